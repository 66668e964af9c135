"""How far under each signal's loudest value the speech distortion should count errors.

    .venv/bin/python benchmarks/audible_range.py --rate 1.0 --ranges none 50 60
    .venv/bin/python benchmarks/audible_range.py --rate 1.0 --ranges none 50 --bandwidth 8000

For every range (in dB; ``none``: errors count everywhere), the latent search minimises
the speech distortion with that floor (``SpeechModality(audible_range_db=...)``) and every
TRAIN clip is coded at ``--rate`` as ``unicomp compress`` codes it; the means of the real
rate and of PESQ-WB, PESQ-NB and STOI are printed. The clips are the 10 s clips the
speech recipe calibrates on (unicomp/release/speech.py), ``--per-folder`` of them per
train folder, at the one ``--bandwidth`` asked (16000: the originals, 8000: their 8 kHz
copies). Never run it on the evaluate split.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

from unicomp.api import load_codec
from unicomp.bench.summary import finite_mean
from unicomp.modalities.speech.modality import SpeechModality, audible_floor
from unicomp.release.corpus import CORPUS
from unicomp.release.speech import train_clips


def _range(text: str) -> float | None:
    return None if text == "none" else float(text)


def _share_below(analysed: list[torch.Tensor], audible_range: float | None) -> float:
    """The mean share of the clips' log-mel values under the range, where no error counts."""
    if audible_range is None:
        return 0.0
    return statistics.fmean(
        float((x < audible_floor(x[None], audible_range)[0]).float().mean()) for x in analysed
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, required=True, help="kbit/s to code at")
    parser.add_argument("--ranges", nargs="+", type=_range, required=True, help="dB or none")
    parser.add_argument("--data", type=Path, default=CORPUS / "speech" / "train")
    parser.add_argument("--model", help="model name, card or run folder (default: the default)")
    parser.add_argument("--per-folder", type=int, default=3, help="10 s clips per folder")
    parser.add_argument("--bandwidth", type=int, choices=(16000, 8000), default=16000)
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    codec = load_codec(args.model, "speech")
    clips = train_clips(args.data, args.per_folder)
    clips = [clip for clip in clips if clip.sample_rate == args.bandwidth]
    print(f"{codec.name}: {len(clips)} clips at {args.bandwidth} Hz, {args.rate} kbit/s")
    analysed = [SpeechModality().analysis(clip)[0] for clip in clips]
    for audible_range in args.ranges:
        codec.modality = SpeechModality(audible_range_db=audible_range)
        rates, scores = [], []
        for clip in clips:
            data, report = codec.encode(clip, rate=args.rate)
            rates.append(report.rate)
            scores.append(codec.modality.metrics(clip, codec.decode(data)))
        below = _share_below(analysed, audible_range)
        means = "  ".join(f"{key} {finite_mean(s[key] for s in scores):.4f}" for key in scores[0])
        print(
            f"range {audible_range}: values under it {below:.1%}"
            f"  kbps {statistics.fmean(rates):.4f}  {means}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

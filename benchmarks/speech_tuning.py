"""Tune speech coding for listeners on train clips: the latent search's envelope weight
(modality.SEARCH_ENVELOPE_WEIGHT) and length, and the decoder's post-filter
(POSTFILTER_PERCENT).

Each clip is coded once per rate, ``--envelope-weights`` value and ``--iterations``
value (search steps; 0 sends the encoder's output, none the model's own); the file is then
decoded with every ``--percents`` value written into its side info ``pf`` (how much
farther each mel band moves from its mean), and PESQ-WB, PESQ-NB and STOI are averaged
per rate, weight, search steps and percent. The clips are
train clips, as tuning must be: by default the six longest Italian prompts (asterisk,
wideband) and one letter of six klettres languages. ``--narrowband`` codes them
resampled to 8 kHz, as a telephone recording arrives.

    .venv/bin/python benchmarks/speech_tuning.py --rates 2 1 --percents 0 5 10 15 20
    .venv/bin/python benchmarks/speech_tuning.py --rates 2 --envelope-weights 0 0.5 2 --percents 10
    .venv/bin/python benchmarks/speech_tuning.py --rates 2 --iterations 0 40 120 --percents 10
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import soundfile
import torch

from unicomp.api import load_codec
from unicomp.core import container
from unicomp.modalities.speech.modality import (
    SEARCH_ENVELOPE_WEIGHT,
    SpeechModality,
    SpeechSignal,
    resample,
)
from unicomp.release.corpus import CORPUS

TRAIN = CORPUS / "speech" / "train"
KLETTRES_LANGUAGES = ("ar", "da", "de", "he", "ru", "ml")
METRICS = ("pesq_wb", "pesq_nb", "stoi")


def default_clips(train: Path = TRAIN) -> list[Path]:
    """Six long wideband prompts and six klettres letters, from the train split."""
    prompts = sorted((train / "it").glob("*.wav"), key=lambda p: -soundfile.info(p).duration)
    letters = [sorted((train / "klettres" / lang).glob("*.wav"))[3] for lang in KLETTRES_LANGUAGES]
    return prompts[:6] + letters


def with_postfilter(data: bytes, percent: int) -> bytes:
    """The same file, its side info asking for ``percent``."""
    parts = container.unpack_parts(data)
    side_info = {**parts.header.side_info, "pf": percent}
    header = dataclasses.replace(parts.header, side_info=side_info)
    return container.pack(header, parts.payload, parts.refinement)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="speech-v2")
    parser.add_argument("--rates", nargs="+", type=float, default=[2.0, 1.0], help="kbit/s")
    parser.add_argument("--percents", nargs="+", type=int, default=[0, 5, 10, 15, 20])
    parser.add_argument(
        "--envelope-weights", nargs="+", type=float, default=[SEARCH_ENVELOPE_WEIGHT]
    )
    parser.add_argument(
        "--iterations", nargs="+", type=int, default=[None], help="default: the model's own"
    )
    parser.add_argument("--clips", nargs="+", type=Path, help="default: see the docstring")
    parser.add_argument("--narrowband", action="store_true", help="code the clips at 8 kHz")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    codec = load_codec(args.model)
    speech = codec.modality
    assert isinstance(speech, SpeechModality), f"{args.model} is no speech model"
    clips = args.clips or default_clips()
    settings = [
        (rate, weight, iterations, percent)
        for rate in args.rates
        for weight in args.envelope_weights
        for iterations in args.iterations
        for percent in args.percents
    ]
    scores: dict[tuple[float, float, int | None, int], list[list[float]]] = {
        key: [] for key in settings
    }
    for clip in clips:
        signal = speech.load(clip)
        if args.narrowband:
            mono = resample(signal.mono(), signal.sample_rate, 8000)
            signal = SpeechSignal(mono[:, None], 8000, signal.subtype)
        for rate in args.rates:
            for weight in args.envelope_weights:
                speech.envelope_weight = weight
                for iterations in args.iterations:
                    data, _ = codec.encode(signal, rate=rate, admm_iterations=iterations)
                    for percent in args.percents:
                        decoded = codec.decode(with_postfilter(data, percent))
                        found = speech.metrics(signal, decoded)
                        key = rate, weight, iterations, percent
                        scores[key].append([found[m] for m in METRICS])
        print(f"{clip.parent.name}/{clip.name} done", file=sys.stderr, flush=True)
    print(f"{len(clips)} clips, model {args.model}, mean {' / '.join(METRICS)}")
    columns = ("kbit/s", "envelope weight", "search steps", "post-filter %", *METRICS)
    print("| " + " | ".join(columns) + " |")
    print("|" + " --- |" * len(columns))
    for (rate, weight, iterations, percent), rows in scores.items():
        means = np.nanmean(np.array(rows), axis=0)
        cells = " | ".join(f"{v:.3f}" for v in means)
        steps = "model's" if iterations is None else iterations
        print(f"| {rate:g} | {weight:g} | {steps} | {percent} | {cells} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

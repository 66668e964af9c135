"""Whether a speech generator fills what lies under the audible range (pauses, quiet bands).

    .venv/bin/python benchmarks/pause_fill.py unicomp/weights/speech-v1.json \
        ~/.cache/unicomp/runs/speech-v2-deep/speech-v2-deep.json

A model trained on the audible-range distortion (``SpeechModality.distortion``) is told
nothing about the log-mel values more than ``AUDIBLE_RANGE_DB`` under a crop's loudest:
only its adversarial losses keep it from putting sound there, which a listener would hear
as noise in the pauses. For each model, the 10 s wideband TRAIN clips of the speech recipe
go through its encoder, hard quantizer and default point's generator (no search, no
entropy coding), and over the values under each clip's floor this prints how far the
decoded log-mel rises above the original (mean, dB) and the share decoded above the floor,
beside the distortion with and without the floor.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

import torch

from unicomp.core.checkpoint import load_model
from unicomp.modalities.speech.modality import (
    AUDIBLE_RANGE_DB,
    LOGMEL_SCALE,
    SpeechModality,
    audible_floor,
)
from unicomp.release.corpus import CORPUS
from unicomp.release.speech import train_clips

#: dB per model unit of the log-mel (natural log of magnitudes, scaled by LOGMEL_SCALE).
DB_PER_UNIT = 20.0 / math.log(10.0) * LOGMEL_SCALE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", type=Path, help="model cards")
    parser.add_argument("--data", type=Path, default=CORPUS / "speech" / "train")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    speech, everywhere = SpeechModality(), SpeechModality(audible_range_db=None)
    clips = [clip for clip in train_clips(args.data) if clip.sample_rate == 16000]
    for card in args.models:
        model = load_model(card, speech.build_networks)
        point = model.point()
        rows = []
        for clip in clips:
            x = speech.analysis(clip)[0][None]
            with torch.no_grad():
                z = point.latents(model.encoder(x))
                x_hat = point.generator(model.quantizer.dequantize(model.quantizer.indices(z)))
            floor = audible_floor(x, AUDIBLE_RANGE_DB)
            under = x < floor
            rows.append(
                (
                    float(everywhere.distortion(x_hat, x)),
                    float(speech.distortion(x_hat, x)),
                    float(torch.relu(x_hat - x)[under].mean()) * DB_PER_UNIT,
                    float((x_hat[under] > floor).float().mean()),
                )
            )
        full, floored, excess, share = (
            statistics.fmean(column) for column in zip(*rows, strict=True)
        )
        steps = model.card.get("training", {}).get("steps")
        print(
            f"{card} (step {steps}): {len(clips)} clips; L1 everywhere {full:.4f},"
            f" within the range {floored:.4f}; under the floor: {excess:.2f} dB above the"
            f" original on average, {share:.1%} decoded above the floor",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

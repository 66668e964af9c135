"""Compare encoder settings (the latent search, the coarse correction) on TRAIN data.

    .venv/bin/python benchmarks/tune_admm.py --modality image --limit 4
    .venv/bin/python benchmarks/tune_admm.py --modality speech --rate 1.5kbps \
        --model ~/.cache/unicomp/runs/speech-v1/speech-v1.json
    .venv/bin/python benchmarks/tune_admm.py --modality image --sweep correction --rate 0.25bpp

Every setting of the sweep's list below for the modality (overrides of the model's
config: its AdmmConfig for ``search``, its RefinementConfig for ``correction``; ``{}``
is the model's own) encodes every signal, and the means per setting are printed: the
distortion the search minimises (the modality's, of the decoded model-space tensor), the
rate from the real file sizes, the modality's metrics of the decoded files, the ADMM
iterations run, the encode seconds and the correction's share of the files. The
modality's ``default_config()`` records the setting chosen and why.

Run it on TRAIN data only (the default): settings are chosen there, never on the
evaluate sets ``unicomp bench`` reports on. Images are coded at typical photo size
(long side 768 px) as calibration codes them; speech as the 10 s train clips
``unicomp/release/speech.py`` calibrates on (half of them 8 kHz copies). Every file is
coded at ``--rate`` (default: the model's default rate) as ``unicomp compress`` codes
it, within 3 % under that rate, so settings compare by distortion at equal rate.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from unicomp.api import load_codec
from unicomp.bench.summary import finite_mean
from unicomp.core.codec import Codec
from unicomp.core.config import merge
from unicomp.core.points import parse_rate
from unicomp.modalities.image.io import ImageSignal
from unicomp.modalities.image.modality import ImageModality
from unicomp.release.corpus import CORPUS
from unicomp.release.image import typical_photos
from unicomp.release.speech import train_clips

#: Correction cells down to 8 px, for the larger shares.
_FINE_CELLS = [8, 12, 16, 24, 32, 48, 64, 96, 128]

#: Per sweep, the config section it overrides and the overrides compared per modality
#: ({} is the model's own).
SWEEPS: dict[str, tuple[str, dict[str, tuple[dict[str, Any], ...]]]] = {
    "search": (
        "admm",
        {
            "image": (
                {"iterations": 0},
                {},
                {"learning_rate": 0.03},
                {"learning_rate": 0.07},
                {"iterations": 16, "time_budget": None},
                {"method": "admm", "iterations": 6, "inner_steps": 1, "learning_rate": 0.15},
            ),
            "speech": (
                {"iterations": 0},
                {},
                {"learning_rate": 0.02},
                {"iterations": 60},
                {"iterations": 80},
                {"method": "admm", "iterations": 10, "inner_steps": 2, "learning_rate": 0.1},
            ),
        },
    ),
    "correction": (
        "refinement",
        {
            "image": (
                {},
                {"share": 0.1, "cells": _FINE_CELLS},
                {"share": 0.2, "cells": _FINE_CELLS},
            ),
        },
    ),
}


def photos(folder: Path) -> list[ImageSignal]:
    return typical_photos(ImageModality(), folder)


#: The TRAIN signals of each modality, from its train folder.
SIGNALS: dict[str, Callable[[Path], list[Any]]] = {"image": photos, "speech": train_clips}


def sweep(
    codec: Codec, signals: list[Any], rate: float | None, name: str = "search"
) -> Iterator[dict[str, Any]]:
    """Mean distortion, rate, iterations and seconds of each setting of sweep ``name`` for
    the modality in turn."""
    section, settings = SWEEPS[name]
    base = codec.model.config
    try:
        for overrides in settings[codec.modality.name]:
            codec.model.config = merge(base, {section: overrides})
            reports, scores = [], []
            for signal in signals:
                data, report = codec.encode(signal, rate=rate)
                reports.append(report)
                scores.append(codec.modality.metrics(signal, codec.decode(data)))
            row = {
                "settings": json.dumps(overrides),
                "distortion": statistics.fmean(r.distortion for r in reports),
                codec.modality.rate_unit: statistics.fmean(r.rate for r in reports),
                **{name: finite_mean(s[name] for s in scores) for name in scores[0]},
                "iterations": statistics.fmean(r.iterations for r in reports),
                "seconds": statistics.fmean(r.seconds for r in reports),
                "correction_share": statistics.fmean(
                    r.refinement_bits / r.total_bits for r in reports
                ),
            }
            yield row
    finally:
        codec.model.config = base


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modality", choices=["image", "speech"], required=True)
    parser.add_argument("--sweep", choices=sorted(SWEEPS), default="search", help="what to vary")
    parser.add_argument("--data", type=Path, help="TRAIN folder (default: the corpus's)")
    parser.add_argument("--model", help="model name, card or run folder (default: the default)")
    parser.add_argument("--rate", help="rate to code at (default: the model's default)")
    parser.add_argument("--limit", type=int, help="use only this many signals, spread evenly")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    if args.modality not in SWEEPS[args.sweep][1]:
        parser.error(f"the {args.sweep} sweep has no {args.modality} settings")
    codec = load_codec(args.model, args.modality)
    data = args.data or CORPUS / args.modality / "train"
    signals = SIGNALS[args.modality](data)
    if args.limit:
        signals = signals[:: max(1, len(signals) // args.limit)][: args.limit]
    unit = codec.modality.rate_unit
    rate = parse_rate(args.rate, unit) if args.rate else codec.default_rate
    print(f"{codec.name} on {len(signals)} signals of {data}; at {rate} {unit}", flush=True)
    for row in sweep(codec, signals, rate, args.sweep):
        print("  ".join(_cell(k, v) for k, v in row.items()), flush=True)
    return 0


def _cell(key: str, value: Any) -> str:
    return f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}"


if __name__ == "__main__":
    sys.exit(main())

"""What each operating point of a training run codes, on TRAIN signals, as real files.

    .venv/bin/python benchmarks/trained_points.py --modality image \
        --model ~/.cache/unicomp/runs/image-v2/image-v2.json

A rate-aware run (``[train] rate_weights``) holds one point per rate weight. Its log
reports the bits the training tables price, which lag the model; this codes the
recipe's measured calibration signals (train split, never evaluate) at every point of
the run's latest checkpoint, encoder output only (``--effort fast``; the search would
move every point alike), and prints each point's mean file rate and metrics: whether
the weights span the rates the release is to serve, before the run ends. Speech is
reported over all signals and per group (wideband prompts, their narrowband copies):
what a point spends on a band the file does not have.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from unicomp.api import load_codec
from unicomp.bench.summary import finite_mean
from unicomp.core.codec import Codec
from unicomp.core.points import TRAINED_PREFIX
from unicomp.release.corpus import CORPUS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modality", choices=["image", "speech"], required=True)
    parser.add_argument("--model", required=True, help="the run's model card")
    parser.add_argument("--data", type=Path, help="train folder (default: the corpus's)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    recipe = importlib.import_module(f"unicomp.release.{args.modality}").RECIPE
    codec = load_codec(args.model, args.modality)
    signals = recipe.calibration(args.data or CORPUS / args.modality / "train").measured
    steps = codec.model.card.get("training", {}).get("steps")
    print(f"{codec.name} at step {steps}: {len(signals)} train signals, encoder output")
    unit = codec.modality.rate_unit
    group_of = getattr(codec.modality, "bench_group", None)
    groups = {"all": signals}
    if group_of is not None:  # speech: narrowband copies apart from their wideband prompts
        for signal in signals:
            groups.setdefault(group_of(signal), []).append(signal)
    for index, point in enumerate(codec.model.points):
        print(f"{point.label or 'default'} ({_how_made(codec, index)})")
        coded = {id(s): _code(codec, s, point.label) for s in signals}
        for group, members in groups.items():
            rate = statistics.fmean(coded[id(s)][0] for s in members)
            print(f"  {group:>12} {rate:.4f} {unit:<5} {_scores(coded[id(s)][1] for s in members)}")


def _how_made(codec: Codec, index: int) -> str:
    """How point ``index`` came to be: the rate weight and target a run trained it at,
    or, on an exported card, the search weight calibration gave it."""
    point = codec.model.points[index]
    if point.label is not None and not point.label.startswith(TRAINED_PREFIX):
        return f"calibrated, search weight {point.rate_weight:.4g}"
    train = codec.model.config.train
    made = f"weight {(train.rate_weights or [0.0])[index]:g}"
    if train.rate_targets:
        made += f", target {train.rate_targets[index]:g} bits"
    return made


def _scores(metrics: Iterable[dict[str, float]]) -> str:
    """Each metric's mean over ``metrics``, one line."""
    metrics = list(metrics)
    return "  ".join(f"{name} {finite_mean(m[name] for m in metrics):.4g}" for name in metrics[0])


def _code(codec: Codec, signal: Any, label: str | None) -> tuple[float, dict[str, float]]:
    """The rate and metrics of ``signal`` coded at point ``label`` from the encoder's output."""
    data, report = codec.encode(signal, operating_point=label, effort="fast")
    return report.rate, codec.modality.metrics(signal, codec.decode(data))


if __name__ == "__main__":
    main()

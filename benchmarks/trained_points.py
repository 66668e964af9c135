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

``--against CARD`` codes a second run's points on the same signals and prints, per
metric, its mean gain over the first run's curve at equal rate (BD-quality over the
rates both span): short ablations end with curves too flat in PSNR for a BD-rate.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
from pathlib import Path
from typing import Any

import torch

from unicomp.api import load_codec
from unicomp.bench.bd import bd_quality
from unicomp.bench.summary import finite_mean
from unicomp.core.codec import Codec
from unicomp.core.points import TRAINED_PREFIX
from unicomp.release.corpus import CORPUS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modality", choices=["image", "speech"], required=True)
    parser.add_argument("--model", required=True, help="the run's model card")
    parser.add_argument("--data", type=Path, help="train folder (default: the corpus's)")
    parser.add_argument("--against", help="a second run's model card, compared at equal rate")
    args = parser.parse_args()
    torch.set_num_threads(1)
    recipe = importlib.import_module(f"unicomp.release.{args.modality}").RECIPE
    signals = recipe.calibration(args.data or CORPUS / args.modality / "train").measured
    first = report_points(load_codec(args.model, args.modality), signals)
    if args.against:
        second = report_points(load_codec(args.against, args.modality), signals)
        print(f"at equal rate, {args.against} against {args.model}:")
        for metric in first[0][1]:
            gain = bd_quality(*_curve(first, metric), *_curve(second, metric))
            print(f"  {metric} {gain:+.4g}")


Curve = list[tuple[float, dict[str, float]]]


def report_points(codec: Codec, signals: list[Any]) -> Curve:
    """Print what every point codes ``signals`` at; return its mean rate and metrics."""
    steps = codec.model.card.get("training", {}).get("steps")
    print(f"{codec.name} at step {steps}: {len(signals)} train signals, encoder output")
    unit = codec.modality.rate_unit
    group_of = getattr(codec.modality, "bench_group", None)
    curve: Curve = []
    groups = {"all": signals}
    if group_of is not None:  # speech: narrowband copies apart from their wideband prompts
        for signal in signals:
            groups.setdefault(group_of(signal), []).append(signal)
    for index, point in enumerate(codec.model.points):
        print(f"{point.label or 'default'} ({_how_made(codec, index)})")
        coded = {id(s): _code(codec, s, point.label) for s in signals}
        for group, members in groups.items():
            rate, means = _mean_point([coded[id(s)] for s in members])
            scores = "  ".join(f"{name} {value:.4g}" for name, value in means.items())
            print(f"  {group:>12} {rate:.4f} {unit:<5} {scores}")
            if group == "all":
                curve.append((rate, means))
    return curve


def _curve(points: Curve, metric: str) -> tuple[list[float], list[float]]:
    """Rates and one metric's values, in the order BD functions take them."""
    return [rate for rate, _ in points], [metrics[metric] for _, metrics in points]


def _mean_point(coded: list[tuple[float, dict[str, float]]]) -> tuple[float, dict[str, float]]:
    """The mean rate and per-metric means of one point's coded signals."""
    metrics = [m for _, m in coded]
    means = {name: finite_mean(m[name] for m in metrics) for name in metrics[0]}
    return statistics.fmean(rate for rate, _ in coded), means


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


def _code(codec: Codec, signal: Any, label: str | None) -> tuple[float, dict[str, float]]:
    """The rate and metrics of ``signal`` coded at point ``label`` from the encoder's output."""
    data, report = codec.encode(signal, operating_point=label, effort="fast")
    return report.rate, codec.modality.metrics(signal, codec.decode(data))


if __name__ == "__main__":
    main()

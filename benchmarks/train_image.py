"""Train the default image model (image-v1) on the corpus's train split, resumably.

    nohup .venv/bin/python benchmarks/train_image.py --resume \
        > ~/.cache/unicomp/runs/image-v1.log 2>&1 &
    .venv/bin/python benchmarks/train_image.py --export   # any time after the soft phase

The seed is fixed and the batch of every step is a pure function of (seed, step), so a
run stopped at any point and restarted with ``--resume`` continues exactly from its last
checkpoint (every ``checkpoint_every`` steps); the run folder always holds the latest
model and its card. Images the modality refuses (transparent ones) are left out and
listed in the card. One torch thread: the machine is shared with other training runs.

``--export`` writes one model per rate label into ``unicomp/weights``: the run's latest
weights with the label's rate-term weight (the entropy-constrained projection of the
latent search) and entropy tables fitted to it, calibrated on the TRAIN images (never
the evaluate ones) resized to typical photo size (long side 768 px) so that their mean
bit rate hits the label. The weight is first solved with the projection alone (cheap),
then corrected by the ratio of real .ucz sizes with the full ADMM search to that
estimate, measured on a subset (the closer round is kept). Fixed tables cannot do
this: the cheapest of 8 nearly equiprobable centers costs ~2 bits, so no weight gets
the trained tables below ~0.25 bpp.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from unicomp.core.admm import project
from unicomp.core.checkpoint import Model, load_model, save_model
from unicomp.core.codec import Codec
from unicomp.core.config import load_overrides, merge
from unicomp.core.data import CropDataset, find_files
from unicomp.core.entropy import EntropyTables
from unicomp.core.trainer import StepReport, Trainer
from unicomp.errors import InputError
from unicomp.modalities.image.io import ImageSignal
from unicomp.modalities.image.modality import RATES, ImageModality

CORPUS = Path.home() / ".cache" / "unicomp" / "corpus"
DEFAULT_DATA = CORPUS / "image" / "train"
DEFAULT_OUT = Path.home() / ".cache" / "unicomp" / "runs" / "image-v1"
WEIGHTS = Path(__file__).resolve().parents[1] / "unicomp" / "weights"
#: Calibration images are resized so that their long side is at most this.
TYPICAL_SIDE = 768
#: How many train images the full-search correction encodes (spread over the set).
CORRECTION_IMAGES = 4
CORRECTION_ROUNDS = 1
#: Bisection range of the rate-term weight (squared latent units per bit).
MIN_RATE_WEIGHT, MAX_RATE_WEIGHT = 1e-7, 1e3
BISECTION_STEPS = 25
TABLE_ITERATIONS = 5


def load_training_set(
    modality: ImageModality, folder: Path, crop: list[int]
) -> tuple[CropDataset, list[str]]:
    """Analysed training images, and the names of those the modality refuses."""
    tensors, excluded = [], []
    for path in find_files(modality, folder):
        try:
            tensors.append(modality.analysis(modality.load(path))[0])
        except InputError as error:
            print(f"left out {path.name}: {error}", flush=True)
            excluded.append(path.name)
    return CropDataset(tensors, crop), excluded


def typical_size(signal: ImageSignal) -> ImageSignal:
    """The image shrunk (Lanczos) so that its long side is at most TYPICAL_SIDE."""
    factor = TYPICAL_SIDE / max(signal.height, signal.width)
    if factor >= 1:
        return signal
    size = (round(signal.width * factor), round(signal.height * factor))
    image = Image.fromarray(signal.pixels.squeeze(2) if signal.channels == 1 else signal.pixels)
    pixels = np.asarray(image.resize(size, Image.Resampling.LANCZOS))
    return ImageSignal(pixels.reshape(size[1], size[0], -1), signal.mode)


def fitted_tables(model: Model, latents: list[torch.Tensor], weight: float) -> EntropyTables:
    """Entropy tables fitted to the rate-aware projection at ``weight``.

    Entropy-constrained quantizer design: project with the tables' code lengths, count
    the indices, rebuild the tables, repeat. A larger weight concentrates each channel
    on its cheapest centers, which makes them cheaper still; that is what lets one
    network reach rates far below the one it was trained at.
    """
    centers = model.quantizer.centers.detach()
    tables = model.tables
    for _ in range(TABLE_ITERATIONS):
        counts = torch.zeros(tables.channels, tables.num_symbols, dtype=torch.float64)
        for z in latents:
            indices = project(z, centers, tables.bits(), weight)[0].flatten(1)
            counts += F.one_hot(indices, tables.num_symbols).sum(dim=1).double()
        tables = EntropyTables.from_counts(counts)
    return tables


def projected_rate(
    tables: EntropyTables,
    centers: torch.Tensor,
    latents: list[torch.Tensor],
    pixels: list[int],
    weight: float,
) -> float:
    """Mean estimated bpp of the rate-aware projection of encoder outputs."""
    rates = [
        tables.estimate_bits(project(z, centers, tables.bits(), weight)[0]) / count
        for z, count in zip(latents, pixels, strict=True)
    ]
    return statistics.fmean(rates)


def solve_weight(rate: Callable[[float], float], target: float) -> float:
    """The rate-term weight whose rate is ``target`` (bisection in log space).

    0 if the unconstrained rate is already below the target; MAX_RATE_WEIGHT if even
    that cannot reach it.
    """
    if rate(0.0) <= target:
        return 0.0
    if rate(MAX_RATE_WEIGHT) > target:
        return MAX_RATE_WEIGHT
    low, high = 0.0, MAX_RATE_WEIGHT
    for _ in range(BISECTION_STEPS):
        middle = math.sqrt(max(low, MIN_RATE_WEIGHT) * high)
        low, high = (middle, high) if rate(middle) > target else (low, middle)
    return high


def export(run: Path, data: Path, dest: Path, command: str) -> list[Path]:
    """Save one model per rate label into ``dest``: the run's weights, calibrated tables."""
    modality = ImageModality()
    defaults = modality.default_config()
    trained = load_model(run / f"{defaults.name}.json", modality.build_networks)
    steps = int(trained.card.get("training", {}).get("steps", 0))
    quantized_from = trained.config.train.float_steps + trained.config.train.soft_steps
    if steps <= quantized_from:
        raise SystemExit(f"model at step {steps} has no index statistics before {quantized_from}")
    signals = []
    for path in find_files(modality, data):
        try:
            signal = typical_size(modality.load(path))
            modality.analysis(signal)
        except InputError:
            continue
        signals.append(signal)
    with torch.no_grad():
        latents = [trained.encoder(modality.analysis(s)[0].unsqueeze(0)) for s in signals]
    pixels = [s.height * s.width for s in signals]
    picks = range(0, len(signals), max(1, len(signals) // CORRECTION_IMAGES))[:CORRECTION_IMAGES]
    centers = trained.quantizer.centers.detach()

    def calibrated_rate(weight: float) -> float:
        tables = fitted_tables(trained, latents, weight)
        return projected_rate(tables, centers, latents, pixels, weight)

    cards = []
    for label in RATES:
        target = float(label.removesuffix("bpp"))
        correction, rounds = 1.0, []
        for _ in range(CORRECTION_ROUNDS + 1):
            weight = solve_weight(lambda w, c=correction: c * calibrated_rate(w), target)
            config = dataclasses.replace(
                trained.config,
                name=modality.default_model(label),
                operating_points={label: weight},
                admm=dataclasses.replace(defaults.admm, rate_weight=weight),
            )
            tables = fitted_tables(trained, latents, weight)
            model = dataclasses.replace(trained, config=config, tables=tables)
            codec = Codec(modality, model)
            measured = statistics.fmean(codec.encode(signals[i])[1].rate for i in picks)
            estimated = projected_rate(
                tables, centers, [latents[i] for i in picks], [pixels[i] for i in picks], weight
            )
            print(f"{label}: weight {weight:.4g} -> {measured:.4f} bpp on the subset", flush=True)
            rounds.append((abs(math.log(measured / target)), weight, measured, model))
            correction = measured / estimated
        _, weight, measured, model = min(rounds, key=lambda round_: round_[0])
        card = {
            "calibration": {
                "command": command,
                "data": f"{data} ({len(signals)} images, long side <= {TYPICAL_SIDE} px)",
                "subset_images": len(picks),
                "rate_weight": weight,
                "subset_bpp": measured,
            }
        }
        cards.append(save_model(model, dest, card))
    return cards


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="training image folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="run folder")
    parser.add_argument("--config", type=Path, help="TOML overrides of the default config")
    parser.add_argument("--resume", action="store_true", help="continue from the run folder")
    parser.add_argument("--stop-at", type=int, help="stop after this many steps in total")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument(
        "--export", action="store_true", help="calibrate the run's model into --weights"
    )
    parser.add_argument("--weights", type=Path, default=WEIGHTS, help="export folder")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    command = shlex.join(["python", "benchmarks/train_image.py", *sys.argv[1:]])
    if args.export:
        for card_path in export(args.out, args.data, args.weights, command):
            print(f"exported {card_path}", flush=True)
        return 0
    modality = ImageModality()
    config = modality.default_config()
    if args.config is not None:
        config = merge(config, load_overrides(args.config))
    dataset, excluded = load_training_set(modality, args.data, config.train.crop)
    card = {
        "data": {"folder": str(args.data), "items": len(dataset), "excluded": excluded},
        "training": {"command": command, "data": "benchmarks/corpus.py: image/train"},
    }
    trainer = Trainer(modality, config, dataset, args.out, card=card)
    if args.resume and trainer.resume():
        print(f"resumed at step {trainer.step}", flush=True)
    started = time.monotonic()

    def report(step: StepReport) -> None:
        if step.step % config.train.log_every == 0:
            losses = " ".join(f"{k} {v:.4f}" for k, v in step.losses.items())
            elapsed = time.monotonic() - started
            print(
                f"step {step.step} [{step.phase}] {losses} "
                f"({step.steps_per_second:.2f} steps/s, {elapsed / 60:.1f} min)",
                flush=True,
            )

    print(f"training {config.name} into {args.out} ({config.train.total_steps} steps)", flush=True)
    card_path = trainer.run(stop_at=args.stop_at, on_step=report)
    print(f"done: {card_path or args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

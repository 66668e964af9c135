"""The one command line behind benchmarks/train_image.py and train_speech.py.

A default model is made the same way for every modality: train resumably on the
corpus's train split (fixed seed; the batch of every step is a pure function of
(seed, step), so ``--resume`` continues exactly from the last checkpoint), then
``--export`` calibrates the run's latest model's operating points on TRAIN signals
(core/calibration.py) and writes weights and card into ``unicomp/weights``. What
differs per modality — how the training set and the calibration signals are made —
is a :class:`Recipe` (image.py, speech.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from unicomp.core.calibration import calibrate, calibrate_points
from unicomp.core.checkpoint import Model, load_model, round_to_half, save_model
from unicomp.core.codec import Codec
from unicomp.core.config import ModelConfig, TrainConfig, load_overrides, merge
from unicomp.core.data import CropDataset
from unicomp.core.devices import check_precision, resolve_device
from unicomp.core.point_tuning import GeneratorTuning
from unicomp.core.points import OperatingPoint, parse_rate
from unicomp.core.trainer import Hardware, Trainer, print_every
from unicomp.modalities.base import Modality
from unicomp.release.corpus import CORPUS
from unicomp.weights import BUNDLED_DIR

RUNS = Path.home() / ".cache" / "unicomp" / "runs"


@dataclasses.dataclass(frozen=True)
class Calibration:
    """The signals an export calibrates on: all of them set the entropy tables, the
    ``measured`` subset is encoded in full to correct the aim; ``data`` describes them
    for the card."""

    signals: Sequence[Any]
    measured: Sequence[Any]
    data: str


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How one modality's default model is trained and calibrated."""

    modality: Modality
    script: str
    default_rate: str
    #: ``(data folder, training settings) -> (dataset, card entries describing the data)``
    training_set: Callable[[Path, TrainConfig], tuple[CropDataset, dict[str, Any]]]
    calibration: Callable[[Path], Calibration]
    #: the card key of the calibrated mean rates, e.g. "mean_bpp"
    rate_key: str
    #: fine-tuning steps of each operating point's own generator (core/point_tuning.py)
    tuning_steps: int = 1000


def export(
    recipe: Recipe, run: Path, data: Path, dest: Path, command: str, defaults: ModelConfig
) -> Path:
    """Calibrate the run's latest model's operating points and save it into ``dest``.

    The model is the run's card named after ``defaults`` (the recipe's config with the
    run's overrides); its latent search settings, rate labels and refinement become
    those of ``defaults`` (tuned on train signals), not those the run started with. Weights are
    released as float16 values (half the size), rounded before anything is measured.
    """
    model = load_model(run / f"{defaults.name}.json", recipe.modality.build_networks)
    steps = int(model.card.get("training", {}).get("steps", 0))
    quantized_from = model.config.train.float_steps + model.config.train.soft_steps
    if steps <= quantized_from:
        raise SystemExit(f"model at step {steps} has no index statistics before {quantized_from}")
    model.config = dataclasses.replace(
        model.config, admm=defaults.admm, rates=defaults.rates, refinement=defaults.refinement
    )
    trained = list(model.points)
    for module in (model.encoder, *(point.generator for point in trained)):
        round_to_half(module)
    for point in trained:
        if point.latent_gain is not None:
            point.latent_gain = point.latent_gain.half().float()
    material = recipe.calibration(data)
    tuning = _generator_tuning(recipe, data, model.config)
    print(f"calibrating on {len(material.signals)} train signals", flush=True)
    codec = Codec(recipe.modality, model)
    reached = calibrate_points(
        codec, material.signals, material.measured, recipe.default_rate, tuning=tuning
    )
    calibration = {
        "command": command,
        "data": material.data,
        "measured_on": f"{len(material.measured)} of them, encoded in full",
        "entropy_coding": "context tables (core/context_coding.py) fitted on each point's"
        " projected indices of all of them",
        "generator_tuning": {
            "crops": f"{len(tuning.dataset)} training signals, crops of {model.config.train.crop}",
            "steps": tuning.steps,
            "batch_size": tuning.batch_size,
            "learning_rate": tuning.learning_rate,
            "tuned_points": _tuned_points(codec.model, trained),
        },
        recipe.rate_key: {label: round(rate, 4) for label, rate in reached.items()},
    }
    return save_model(codec.model, dest, {"calibration": calibration})


def add_rate(
    recipe: Recipe,
    card: Path,
    label: str,
    start: str,
    name: str,
    data: Path,
    dest: Path,
    command: str,
) -> Path:
    """A released model with one more rate ``label``, saved as model ``name`` in ``dest``;
    calibrated and tuned on the train split ``data``.

    The label is calibrated (core/calibration.py) from the model's point ``start``: its
    latent gain, tables and generator, then a generator tuned at the weight found, as
    an export calibrates its labels. The other points are unchanged, but the weights'
    sha256 (in every file's header) is not, hence the new name: the old model keeps
    decoding its files. A label below the lowest gives the lowest a rung beneath it
    (core/file_rate.py): a file too detailed for that point at its own weight is coded
    at a blend of the two instead of at a weight far from the one its generator knows.
    """
    model = load_model(card, recipe.modality.build_networks)
    unit = recipe.modality.rate_unit
    rates = sorted({*model.config.rates, label}, key=lambda rate: parse_rate(rate, unit))
    model.config = dataclasses.replace(model.config, name=name, rates=rates)
    model.card.pop("evaluation", None)  # measured on the model without the new label
    material = recipe.calibration(data)
    tuning = _generator_tuning(recipe, data, model.config)
    codec = Codec(recipe.modality, model)
    origin = model.point(start)
    reached = calibrate(
        codec, material.signals, material.measured, label, tuning=tuning, starts=[origin]
    )
    added = {
        "command": command,
        "from": {"model": card.stem, "sha256": model.card["weights"]["sha256"], "point": start},
        "data": material.data,
        recipe.rate_key: round(reached, 4),
        # calibrate keeps the start's generator unless tuning lowered the distortion
        "tuned": model.point(label).generator is not origin.generator,
    }
    return save_model(model, dest, {"added_rate": {label: added}})


def _generator_tuning(recipe: Recipe, data: Path, config: ModelConfig) -> GeneratorTuning:
    """Each calibrated point's generator tuning: on crops of the train split ``data``,
    rounded to the float16 values the release stores."""
    crops, _ = recipe.training_set(data, config.train)
    return GeneratorTuning(crops, recipe.tuning_steps, config.train.batch_size, half_precision=True)


def _tuned_points(model: Model, trained: list[OperatingPoint]) -> list[str]:
    """Labels of the points that decode with a generator tuned for them: one that no
    ``trained`` point decoded with, and for a point other than the default, not the
    default's (which untuned points share)."""
    default = model.point()
    untuned = {id(point.generator) for point in trained}
    return sorted(
        str(point.label)
        for point in model.points
        if id(point.generator) not in untuned
        and (point is default or point.generator is not default.generator)
    )


def main(recipe: Recipe, argv: list[str] | None = None) -> int:
    """Train (or with ``--export``, calibrate and release) the recipe's default model."""
    name = recipe.modality.default_config().name
    parser = argparse.ArgumentParser(description=f"Train the default {name} model, resumably.")
    parser.add_argument(
        "--data", type=Path, default=CORPUS / recipe.modality.name / "train", help="train split"
    )
    parser.add_argument(
        "--out", type=Path, help=f"run folder (default: {RUNS}/<the config's model name>)"
    )
    parser.add_argument("--config", type=Path, help="TOML overrides of the default config")
    parser.add_argument("--resume", action="store_true", help="continue from the run folder")
    parser.add_argument(
        "--start-from",
        type=Path,
        metavar="CARD",
        help="begin a new run from this released model's weights (fine-tuning)",
    )
    parser.add_argument("--stop-at", type=int, help="stop after this many steps in total")
    parser.add_argument("--seconds", type=float, help="stop, with a checkpoint, after this long")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--device", default="cpu", help="where training runs (default cpu)")
    parser.add_argument("--precision", default="fp32", help="fp32, or bf16 on a GPU")
    parser.add_argument(
        "--loader-workers", type=int, default=0, help="processes that load batches (default 0)"
    )
    parser.add_argument(
        "--export", action="store_true", help="calibrate the run's model into --weights"
    )
    parser.add_argument("--weights", type=Path, default=BUNDLED_DIR, help="export folder")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    command = shlex.join(["python", recipe.script, *(sys.argv[1:] if argv is None else argv)])
    config = recipe.modality.default_config()
    if args.config is not None:
        config = merge(config, load_overrides(args.config))
    run = args.out or RUNS / config.name
    if args.export:
        exported = export(recipe, run, args.data, args.weights, command, config)
        print(f"exported {exported}", flush=True)
        return 0
    dataset, data_card = recipe.training_set(args.data, config.train)
    card = {"data": data_card, "training": {"command": command, "data": str(args.data)}}
    device = resolve_device(args.device)
    hardware = Hardware(device, check_precision(args.precision, device), args.loader_workers)
    trainer = Trainer(recipe.modality, config, dataset, run, card=card, hardware=hardware)
    start = None
    if args.start_from is not None:
        start = load_model(args.start_from, recipe.modality.build_networks)
    if trainer.resume_or_start(args.resume, start):
        print(f"resumed at step {trainer.step}", flush=True)
    elif start is not None:
        print(f"starting from {args.start_from}", flush=True)
    print(f"training {config.name} into {run} ({config.train.total_steps} steps)", flush=True)
    card_path = trainer.run(
        stop_at=args.stop_at, on_step=print_every(config.train.log_every), seconds=args.seconds
    )
    print(f"done: {card_path or run}", flush=True)
    return 0

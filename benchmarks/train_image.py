"""Train the default image model (image-v1) on the corpus's train split, resumably.

    nohup .venv/bin/python benchmarks/train_image.py --resume \
        > ~/.cache/unicomp/runs/image-v1.log 2>&1 &
    .venv/bin/python benchmarks/train_image.py --export   # any time after the soft phase

The seed is fixed and the batch of every step is a pure function of (seed, step), so a
run stopped at any point and restarted with ``--resume`` continues exactly from its last
checkpoint (every ``checkpoint_every`` steps); the run folder always holds the latest
model and its card. Images the modality refuses (transparent ones) are left out and
listed in the card. One torch thread: the machine is shared with other training runs.

``--export`` writes the run's latest model into ``unicomp/weights`` with one operating
point per rate label (core/calibration.py): a rate-term weight for the latent search's
entropy-constrained projection and entropy tables fitted to it, calibrated on the TRAIN
images (never the evaluate ones) resized to typical photo size (long side 768 px) so
that real .ucz files of a subset of them meet the label. Fixed tables could not do this:
the cheapest of 8 nearly equiprobable centers costs ~2 bits, so no weight gets the
trained tables below ~0.25 bpp.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from unicomp.core.calibration import calibrate_points
from unicomp.core.checkpoint import load_model, save_model
from unicomp.core.codec import Codec
from unicomp.core.config import load_overrides, merge
from unicomp.core.data import CropDataset, find_files
from unicomp.core.trainer import Trainer, print_every
from unicomp.errors import InputError
from unicomp.modalities.image.io import ImageSignal
from unicomp.modalities.image.modality import DEFAULT_RATE, ImageModality

CORPUS = Path.home() / ".cache" / "unicomp" / "corpus"
DEFAULT_DATA = CORPUS / "image" / "train"
DEFAULT_OUT = Path.home() / ".cache" / "unicomp" / "runs" / "image-v1"
WEIGHTS = Path(__file__).resolve().parents[1] / "unicomp" / "weights"
#: Calibration images are resized so that their long side is at most this.
TYPICAL_SIDE = 768
#: How many train images the full-search correction encodes (spread over the set).
CORRECTION_IMAGES = 4


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


def typical_photos(modality: ImageModality, folder: Path) -> list[ImageSignal]:
    """The images of ``folder`` the modality accepts, each at :func:`typical_size`: what
    calibration and the search-settings sweep (tune_admm.py) code."""
    signals = []
    for path in find_files(modality, folder):
        try:
            signal = typical_size(modality.load(path))
            modality.analysis(signal)
        except InputError:
            continue
        signals.append(signal)
    return signals


def export(run: Path, data: Path, dest: Path, command: str) -> Path:
    """Calibrate the run's latest model's operating points and save it into ``dest``.

    The latent search settings and rate labels are the current defaults (tuned on train
    images), not those the run started with.
    """
    modality = ImageModality()
    defaults = modality.default_config()
    model = load_model(run / f"{defaults.name}.json", modality.build_networks)
    steps = int(model.card.get("training", {}).get("steps", 0))
    quantized_from = model.config.train.float_steps + model.config.train.soft_steps
    if steps <= quantized_from:
        raise SystemExit(f"model at step {steps} has no index statistics before {quantized_from}")
    model.config = dataclasses.replace(
        model.config, admm=defaults.admm, operating_points=defaults.operating_points
    )
    signals = typical_photos(modality, data)
    subset = signals[:: max(1, len(signals) // CORRECTION_IMAGES)][:CORRECTION_IMAGES]
    codec = Codec(modality, model)
    reached = calibrate_points(codec, signals, subset, DEFAULT_RATE)
    calibration = {
        "command": command,
        "data": f"{data} ({len(signals)} images, long side <= {TYPICAL_SIDE} px)",
        "measured_on": f"{len(subset)} of them, encoded in full",
        "mean_bpp": {label: round(rate, 4) for label, rate in reached.items()},
    }
    return save_model(codec.model, dest, {"calibration": calibration})


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
        print(f"exported {export(args.out, args.data, args.weights, command)}", flush=True)
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
    print(f"training {config.name} into {args.out} ({config.train.total_steps} steps)", flush=True)
    card_path = trainer.run(stop_at=args.stop_at, on_step=print_every(config.train.log_every))
    print(f"done: {card_path or args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

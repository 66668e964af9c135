"""How a fine-tuning run starts from a released model: exactly on it, and not thrown off it.

    .venv/bin/python benchmarks/fine_tune_start.py --model image-v2 --steps 3 --warmup 1
    .venv/bin/python benchmarks/fine_tune_start.py --model image-v2 --steps 20

On one crop of a TRAIN photo: how far the run's networks (the default point's gains
folded into them, core/gains.py) are from the model's default point, then the mean
squared error of the crop decoded from its nearest centers before and after ``--steps``
training steps of a hard-phase run at the model's learning rate, with ``--warmup``
steps of warm-up (core/trainer.py's FINE_TUNE_WARMUP unless given; 1 is none).
"""

from __future__ import annotations

import argparse
import importlib
import tempfile
from pathlib import Path

import torch

from unicomp.api import load_codec
from unicomp.core import trainer
from unicomp.core.config import merge
from unicomp.core.quantizer import Quantizer
from unicomp.core.trainer import Trainer
from unicomp.release.corpus import CORPUS
from unicomp.release.recipe import Recipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="image-v2", help="a name or a model card")
    parser.add_argument("--data", type=Path, help="train folder (default: the corpus's)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=trainer.FINE_TUNE_WARMUP)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_codec(args.model).model
    recipe: Recipe = importlib.import_module(f"unicomp.release.{model.config.modality}").RECIPE
    data = args.data or CORPUS / model.config.modality / "train"
    dataset, _ = recipe.training_set(data, model.config.train.crop)
    hard_only = {"float_steps": 0, "soft_steps": 0, "adversarial_start": 0}
    # Long enough that neither the warm-up's cap (a quarter) nor the decay (the second
    # half) reaches the measured steps.
    steps = max(4 * args.warmup, 2 * args.steps)
    config = merge(model.config, {"train": {**hard_only, "hard_steps": steps}})
    trainer.FINE_TUNE_WARMUP = args.warmup
    crop = dataset.sample(0, torch.Generator().manual_seed(0)).unsqueeze(0)
    with tempfile.TemporaryDirectory() as out:
        run = Trainer(recipe.modality, config, dataset, Path(out))
        run.start_from(model)
        point = model.point()
        with torch.no_grad():
            latent = point.latents(model.encoder(crop))
            folded = run.autoencoder.encoder(crop)
            centers = model.quantizer.dequantize(
                torch.randint(0, model.quantizer.num_centers, latent.shape)
            )
            generator_error = (run.autoencoder.generator(centers) - point.generator(centers)).abs()
        relative = float((folded - latent).abs().max() / latent.abs().max())
        print(f"encoder: max relative error {relative:.2g}")
        print(f"generator: max absolute error {float(generator_error.max()):.2g}")
        before = _coded_error(run, model.quantizer, crop)
        run.run(stop_at=args.steps)
        after = _coded_error(run, model.quantizer, crop)
    print(
        f"crop MSE {before:.6f} at the start, {after:.6f} after {args.steps} steps "
        f"(warm-up {args.warmup})"
    )


def _coded_error(run: Trainer, quantizer: Quantizer, crop: torch.Tensor) -> float:
    """The crop's mean squared error decoded from the nearest centers of its latent."""
    run.autoencoder.eval()
    with torch.no_grad():
        latent = run.autoencoder.encoder(crop)
        decoded = run.autoencoder.generator(quantizer.dequantize(quantizer.indices(latent)))
    return float(((decoded - crop) ** 2).mean())


if __name__ == "__main__":
    main()

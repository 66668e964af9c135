"""Train CompressAI's learned image codecs on unicomp's train corpus, for ``unicomp bench``.

    .venv/bin/python benchmarks/train_compressai_baselines.py            # 3 x 3 models, 30 min each
    .venv/bin/python benchmarks/train_compressai_baselines.py --architectures mbt2018-mean \\
        --qualities 1 2 --minutes 60

No pretrained weights can be downloaded here, so every (architecture, quality) pair is
trained from scratch for a fixed CPU budget of ``--minutes`` of wall-clock time (default
30: the 3 architectures x qualities 1-3 take 4.5 h on this 2-core machine), on the same
images as unicomp's model (``benchmarks/corpus.py``'s image/train; never the evaluate
set). The recipe is CompressAI's usual one: loss = lambda * 255^2 * MSE + bpp with the
lambda of the quality as in CompressAI's zoo, Adam at 1e-4, the entropy bottleneck's
quantiles trained on the auxiliary loss by their own Adam at 1e-3, random 256 px crops,
batch 8, gradients clipped at 1. A half-hour CPU run is far from CompressAI's published
models (days on GPUs over large data sets): the card records exactly how much training
a checkpoint had, and ``unicomp bench`` prints it in the codec's description.

Output, outside git, in ~/.cache/unicomp/baselines (or ``$UNICOMP_BASELINE_DIR``):
``ARCH-qQ.safetensors`` (weights after ``update(force=True)``) and ``ARCH-qQ.json``
(recipe, steps, time, final losses, sha256 of the weights), each written atomically.
An existing pair is kept unless ``--force``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections import deque
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from unicomp.atomic import atomic_output
from unicomp.core.checkpoint import sha256_file
from unicomp.core.data import find_files
from unicomp.modalities.image.io import to_tensor
from unicomp.modalities.image.modality import ImageModality
from unicomp.plugins.baselines.learned_image import (
    ARCHITECTURES,
    build_model,
    checkpoint_dir,
    checkpoint_stem,
)
from unicomp.release.corpus import CORPUS

DEFAULT_DATA = CORPUS / "image" / "train"
#: The MSE lambdas of CompressAI's zoo models, quality 1 to 8.
LAMBDAS = {1: 0.0018, 2: 0.0035, 3: 0.0067, 4: 0.0130, 5: 0.0250, 6: 0.0483, 7: 0.0932, 8: 0.18}
#: Final losses are averaged over this many last steps.
SMOOTHING = 50


def load_images(data: Path) -> list[torch.Tensor]:
    """Every train image as a 3 x H x W uint8 tensor (a quarter of float32's memory)."""
    modality = ImageModality()
    return [
        (to_tensor(modality.load(path)) * 255).round().to(torch.uint8)
        for path in find_files(modality, data)
    ]


def random_batch(
    images: list[torch.Tensor], size: int, crop: int, generator: torch.Generator
) -> torch.Tensor:
    """``size`` random crops in [0, 1]; images smaller than the crop are reflect-padded."""
    crops = []
    for index in torch.randint(len(images), (size,), generator=generator).tolist():
        image = images[index].float() / 255
        height, width = image.shape[-2:]
        if min(height, width) < crop:
            image = F.pad(
                image[None], (0, max(0, crop - width), 0, max(0, crop - height)), mode="reflect"
            )[0]
            height, width = image.shape[-2:]
        top = int(torch.randint(height - crop + 1, (1,), generator=generator))
        left = int(torch.randint(width - crop + 1, (1,), generator=generator))
        crops.append(image[:, top : top + crop, left : left + crop])
    return torch.stack(crops)


def train_one(
    architecture: str, quality: int, images: list[torch.Tensor], args: argparse.Namespace
) -> dict[str, Any]:
    """Train one model for the time budget; save weights and card; return the card."""
    torch.manual_seed(args.seed + quality)
    generator = torch.Generator().manual_seed(args.seed + quality)
    model = build_model(architecture, quality).train()
    main = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
    auxiliary = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    optimizer = torch.optim.Adam(main, lr=args.learning_rate)
    aux_optimizer = torch.optim.Adam(auxiliary, lr=args.aux_learning_rate)
    lam = LAMBDAS[quality]
    recent: dict[str, deque[float]] = {k: deque(maxlen=SMOOTHING) for k in ("mse", "bpp")}
    started = time.monotonic()
    deadline = started + 60 * args.minutes
    steps = 0
    while time.monotonic() < deadline:
        batch = random_batch(images, args.batch_size, args.crop, generator)
        out = model(batch)
        pixels = batch.shape[0] * batch.shape[2] * batch.shape[3]
        bpp = sum(-torch.log2(p).sum() for p in out["likelihoods"].values()) / pixels
        mse = F.mse_loss(out["x_hat"], batch)
        loss = lam * 255**2 * mse + bpp
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(main, 1.0)
        optimizer.step()
        aux_optimizer.zero_grad()
        model.aux_loss().backward()
        aux_optimizer.step()
        steps += 1
        recent["mse"].append(mse.item())
        recent["bpp"].append(bpp.item())
        if steps % args.log_every == 0:
            losses = _losses(statistics.fmean(recent["mse"]), statistics.fmean(recent["bpp"]))
            print(f"  {architecture} q{quality} step {steps}: {losses}", flush=True)
    seconds = time.monotonic() - started
    model.update(force=True)
    stem = checkpoint_stem(architecture, quality)
    weights = stem.with_suffix(".safetensors")
    with atomic_output(weights, overwrite=True) as temporary:
        save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, temporary)
    card = {
        "architecture": architecture,
        "quality": quality,
        "metric": "mse",
        "lambda": lam,
        "steps": steps,
        "seconds": round(seconds, 1),
        "budget_minutes": args.minutes,
        "batch_size": args.batch_size,
        "crop": args.crop,
        "learning_rate": args.learning_rate,
        "aux_learning_rate": args.aux_learning_rate,
        "seed": args.seed,
        "train_data": {"folder": str(args.data), "images": len(images)},
        "final": {k: statistics.fmean(v) for k, v in recent.items() if v},
        "versions": {"compressai": version("compressai"), "torch": torch.__version__},
        "command": " ".join(sys.argv),
        "weights": {"file": weights.name, "sha256": sha256_file(weights)},
    }
    with atomic_output(stem.with_suffix(".json"), overwrite=True) as temporary:
        temporary.write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")
    return card


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--architectures", nargs="+", default=list(ARCHITECTURES))
    parser.add_argument("--qualities", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--minutes", type=float, default=30.0, help="budget per model")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--aux-learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--force", action="store_true", help="retrain existing checkpoints")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.architectures) - set(ARCHITECTURES))
    if unknown:
        parser.error(f"unknown architecture(s) {', '.join(unknown)}; known: {ARCHITECTURES}")
    if not set(args.qualities) <= set(LAMBDAS):
        parser.error(f"qualities must be among {sorted(LAMBDAS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    checkpoint_dir().mkdir(parents=True, exist_ok=True)
    images = load_images(args.data)
    print(f"{len(images)} train images from {args.data}; checkpoints in {checkpoint_dir()}")
    for architecture in args.architectures:
        for quality in args.qualities:
            done = checkpoint_stem(architecture, quality).with_suffix(".json").exists()
            if done and not args.force:
                print(f"{architecture} q{quality}: exists, skipped (--force to retrain)")
                continue
            print(f"{architecture} q{quality}: training for {args.minutes} min", flush=True)
            card = train_one(architecture, quality, images, args)
            final = _losses(card["final"]["mse"], card["final"]["bpp"])
            print(f"{architecture} q{quality}: {card['steps']} steps, {final}")
    return 0


def _losses(mse: float, bpp: float) -> str:
    psnr = 10 * math.log10(1 / mse) if mse > 0 else math.inf
    return f"mse {mse:.5f} (PSNR {psnr:.2f} dB) bpp {bpp:.3f}"


if __name__ == "__main__":
    sys.exit(main())

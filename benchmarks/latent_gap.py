"""What limits each operating point of a model: its quantization, its encoder or its generator.

    .venv/bin/python benchmarks/latent_gap.py --modality image \
        --model ~/.cache/unicomp/runs/image-v2/image-v2.json [--steps 16]

On the recipe's measured TRAIN signals (never evaluate), each point's distortion (the
modality's, of the decoded model-space tensor) is printed four ways, means over signals:

- **float**: the point's generator fed its unquantized latent, what the encoder and
  generator reach with no quantization at all;
- **coded**: the latent projected as the codec projects it (at the point's rate weight),
  with the ideal bits per element of the indices under the point's coder tables;
- **searched**: after ``--steps`` iterations of the codec's straight-through search
  from there (no time budget), with their bits: what the per-signal search finds that
  the encoder's single pass does not (the amortization gap), and at what rate;
- **clipped**: the share of latent values beyond the outermost centers, and their share
  of the squared latent error: what the alphabet's range costs a point with a large gain.

"coded" near "float" at a point means more bits cannot help it: the networks are the
limit there, not the quantization.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
from dataclasses import replace

import torch

from unicomp.api import load_codec
from unicomp.core.admm import project
from unicomp.core.codec import Codec
from unicomp.core.points import OperatingPoint
from unicomp.core.search import straight_through_search
from unicomp.release.corpus import CORPUS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modality", choices=["image", "speech"], required=True)
    parser.add_argument("--model", required=True, help="model card (a run's or a release's)")
    parser.add_argument("--steps", type=int, default=16, help="search iterations (default 16)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    recipe = importlib.import_module(f"unicomp.release.{args.modality}").RECIPE
    codec = load_codec(args.model, args.modality)
    signals = recipe.calibration(CORPUS / args.modality / "train").measured
    print(f"{codec.name}: {len(signals)} train signals, {args.steps} search steps")
    for point in codec.model.points:
        rows = [_gaps(codec, point, signal, args.steps) for signal in signals]
        means = {key: statistics.fmean(row[key] for row in rows) for key in rows[0]}
        print(
            f"{point.label or 'default':>10}  float {means['float']:.5f}"
            f"  coded {means['coded']:.5f} ({means['coded_bits']:.3f} bits)"
            f"  searched {means['searched']:.5f} ({means['searched_bits']:.3f} bits)"
            f"  clipped {means['clipped']:.2%} of values, {means['clipped_error']:.1%} of error",
            flush=True,
        )


def _gaps(codec: Codec, point: OperatingPoint, signal: object, steps: int) -> dict[str, float]:
    """The four measures of the module docstring for one signal at one point."""
    modality, centers = codec.modality, codec.model.quantizer.centers.detach()
    x = modality.analysis(signal)[0].unsqueeze(0)
    bits = point.search_tables.bits()
    with torch.no_grad():
        z = point.latents(codec.model.encoder(x))
        float_distortion = modality.distortion(point.generator(z), x)
    indices = project(z, centers, bits, point.rate_weight)
    outside = (z < centers.min()) | (z > centers.max())
    error = (z - centers[indices]) ** 2
    search = replace(codec.model.config.admm, iterations=steps, time_budget=None)
    result = straight_through_search(
        point.generator,
        modality.distortion,
        x,
        z,
        quantizer=codec.model.quantizer,
        config=search,
        rate_weight=point.rate_weight,
        bits=bits,
    )
    with torch.no_grad():
        coded = modality.distortion(point.generator(centers[indices]), x)
    return {
        "float": float(float_distortion[0]),
        "coded": float(coded[0]),
        "coded_bits": float(point.coder.bits_per_element(indices, point.coder_tables)[0]),
        "searched": float(result.distortion[0]),
        "searched_bits": float(point.coder.bits_per_element(result.indices, point.coder_tables)[0]),
        "clipped": float(outside.float().mean()),
        "clipped_error": float(error[outside].sum() / error.sum().clamp_min(1e-12)),
    }


if __name__ == "__main__":
    main()

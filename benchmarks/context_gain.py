"""How many bits context coding saves over per-channel tables, on TRAIN signals.

    .venv/bin/python benchmarks/context_gain.py --modality image
    .venv/bin/python benchmarks/context_gain.py --modality speech --model CARD

For each operating point of the model, the encoder outputs of the default model's
calibration signals (train split) are projected as that point projects them (its rate
weight, priced by its per-channel tables). Per-channel tables and context tables
(core/context_coding.py) are both fitted on the even-numbered signals; the odd-numbered
ones are then coded with each by the real coders. Prints payload bits per latent
element and the saving. The latent search moves indices further, so real files differ
a little; ``unicomp bench`` measures those.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import torch

from unicomp.api import load_codec
from unicomp.core import context_coding
from unicomp.core.admm import project
from unicomp.core.coders import CONTEXT, PER_CHANNEL
from unicomp.core.entropy import EntropyTables, count_indices
from unicomp.release.corpus import CORPUS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modality", choices=["image", "speech"], required=True)
    parser.add_argument("--model", help="model card or name (default: the bundled one)")
    parser.add_argument("--data", type=Path, help="train folder (default: the corpus's)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    recipe = importlib.import_module(f"unicomp.release.{args.modality}").RECIPE
    codec = load_codec(args.model, args.modality)
    model = codec.model
    signals = recipe.calibration(args.data or CORPUS / args.modality / "train").signals
    with torch.no_grad():
        encoded = [model.encoder(codec.modality.analysis(s)[0].unsqueeze(0)) for s in signals]
    centers, symbols = model.quantizer.centers.detach(), model.quantizer.num_centers
    print(f"{model.name}: {len(signals)} train signals, fitted on the even, coded the odd")
    print(f"{'point':>10} {'per-channel':>12} {'context':>9}  saving  (bits per element)")
    for point in model.points:
        bits, weight = point.search_tables.bits(), point.rate_weight
        indices = [project(point.latents(z), centers, bits, weight)[0] for z in encoded]
        fit, coded = indices[0::2], indices[1::2]
        per_channel = EntropyTables.from_counts(sum(count_indices(q[None], symbols) for q in fit))
        contexts = context_coding.fit_tables(fit, symbols)
        elements = sum(q.numel() for q in coded)
        plain = sum(8 * len(PER_CHANNEL.encode(q, per_channel)) for q in coded) / elements
        conditioned = sum(8 * len(CONTEXT.encode(q, contexts)) for q in coded) / elements
        saving = 1 - conditioned / plain
        print(f"{point.label!s:>10} {plain:12.4f} {conditioned:9.4f}  {saving:6.1%}")


if __name__ == "__main__":
    main()

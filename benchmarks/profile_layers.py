"""Time per layer of a modality's encoder and generator: where capacity is cheap.

    .venv/bin/python benchmarks/profile_layers.py --modality image
    .venv/bin/python benchmarks/profile_layers.py --modality image \
        --config benchmarks/image-deep.toml           # the same with a run's overrides

A layer's time depends on its shapes, not its weights, so the networks are built
untrained from the modality's default config (with a TOML's overrides) and fed the
signal the speed targets name (benchmarks/speed.py: a 768x512 photo, a 10 s clip). Each
top-level layer runs on its predecessor's output, on one torch thread, once untimed
and then ``--repeats`` times; the best time is kept. Printed per layer: input and output
shape, milliseconds, share of the network and parameters. Decoding runs the generator
once per file, and each step of the latent search runs it forward and backward.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import NamedTuple

import torch
from speed import CASES  # the signals of the speed targets
from torch import nn

from unicomp.core.config import load_overrides, merge
from unicomp.errors import UnicompError
from unicomp.plugins.manager import get_registry


class LayerTime(NamedTuple):
    """One layer's best time on its input, with its shapes (batch left out)."""

    name: str
    shape_in: tuple[int, ...]
    shape_out: tuple[int, ...]
    seconds: float
    parameters: int


def profile(network: nn.Sequential, x: torch.Tensor, repeats: int) -> torch.Tensor:
    """Print each top-level layer's time on ``x`` and its successors; returns the output."""
    rows = []
    with torch.no_grad():
        for layer in network:
            layer(x)
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                y = layer(x)
                best = min(best, time.perf_counter() - start)
            parameters = sum(p.numel() for p in layer.parameters())
            shapes = tuple(x.shape[1:]), tuple(y.shape[1:])
            rows.append(LayerTime(type(layer).__name__, *shapes, best, parameters))
            x = y
    total = sum(row.seconds for row in rows)
    for index, row in enumerate(rows):
        print(
            f"  {index:2d} {row.name:<16} {str(row.shape_in):<18} -> {str(row.shape_out):<18}"
            f" {1000 * row.seconds:7.1f} ms {100 * row.seconds / total:5.1f} %"
            f" {row.parameters:>9,d} params"
        )
    print(f"  total {1000 * total:.1f} ms, {sum(row.parameters for row in rows):,d} parameters")
    return x


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modality", choices=sorted(CASES), required=True)
    parser.add_argument("--config", type=Path, help="TOML overrides of the default config")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per layer")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        modality = get_registry().modality(args.modality)
        config = modality.default_config()
        if args.config is not None:
            config = merge(config, load_overrides(args.config))
        networks = modality.build_networks(config.network)
        signal = CASES[args.modality].signal()
    except (UnicompError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    x = modality.analysis(signal)[0].unsqueeze(0)
    print(f"{config.name} encoder, on {CASES[args.modality].describe}:")
    latent = profile(networks.encoder.eval(), x, args.repeats)
    print(f"{config.name} generator:")
    profile(networks.generator.eval(), latent, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())

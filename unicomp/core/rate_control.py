"""Operating points: one model serves several rates through rate-constrained projection.

The projection ``argmin_k (z - c_k)^2 + lambda * bits_k`` can only steer indices towards
symbols that are already cheap, so with the training statistics' tables the rate barely
moves. Re-fitting the tables to the indices the projection chooses, and projecting again
(the entropy-constrained Lloyd iteration of Chou, Lookabaugh and Gray, 1989), lets the
index distribution, and with it the rate, contract as far as lambda asks. Each operating
point therefore carries its own rate weight and its own integer tables.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Sequence

import torch

from unicomp.core import context_coding
from unicomp.core.admm import project
from unicomp.core.entropy import EntropyTables, count_indices

LLOYD_ROUNDS = 6


def fit_point_tables(
    latents: Sequence[torch.Tensor],
    centers: torch.Tensor,
    tables: EntropyTables,
    rate_weight: float,
    rounds: int = LLOYD_ROUNDS,
) -> EntropyTables:
    """Tables matched to what rate-weighted projection of ``latents`` produces."""
    for _ in range(rounds):
        bits = tables.bits()
        counts = functools.reduce(
            operator.add,
            (
                count_indices(project(z, centers, bits, rate_weight), centers.numel())
                for z in latents
            ),
        )
        tables = EntropyTables.from_counts(counts)
    return tables


def fit_point_context_tables(
    latents: Sequence[torch.Tensor],
    centers: torch.Tensor,
    tables: EntropyTables,
    rate_weight: float,
) -> EntropyTables:
    """Context tables (core/context_coding.py) for what rate-weighted projection of
    ``latents`` produces with ``tables``' costs."""
    bits = tables.bits()
    indices = [q for z in latents for q in project(z, centers, bits, rate_weight)]
    return context_coding.fit_tables(indices, centers.numel())


def bits_per_element(
    latents: Sequence[torch.Tensor],
    centers: torch.Tensor,
    tables: EntropyTables,
    rate_weight: float,
) -> float:
    """Mean ideal code length per latent element after rate-weighted projection."""
    bits = tables.bits()
    total = sum(
        tables.estimate_bits(project(z, centers, bits, rate_weight).transpose(0, 1))
        for z in latents
    )
    return total / sum(z.numel() for z in latents)


def find_operating_point(
    latents: Sequence[torch.Tensor],
    centers: torch.Tensor,
    tables: EntropyTables,
    target_bits: float,
    search_steps: int = 16,
) -> tuple[float, EntropyTables]:
    """The smallest rate weight tried (and its tables) whose projection costs at most
    ``target_bits`` per element: a point is then never over its target.

    Bisection on log(lambda): the rate falls monotonically as lambda grows. If no weight
    tried meets the target, the largest (cheapest) one is returned. ``latents`` are
    encoder outputs (batch, channels, ...) of training signals, never test data.
    """
    low, high = math.log(1e-5), math.log(1e2)
    tried: tuple[float, EntropyTables] = (0.0, tables)
    met: tuple[float, EntropyTables] | None = None
    for _ in range(search_steps):
        middle = 0.5 * (low + high)
        weight = math.exp(middle)
        fitted = fit_point_tables(latents, centers, tables, weight)
        tried = (weight, fitted)
        if bits_per_element(latents, centers, fitted, weight) > target_bits:
            low = middle
        else:
            high = middle
            met = tried
    return met if met is not None else tried

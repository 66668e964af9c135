"""Entropy coding of center indices conditioned on their already-coded neighbours.

Neighbouring latent elements are alike: where one element sits on its channel's
cheapest center, the next usually does too. So each element is coded with a table
chosen by the indices of its preceding neighbour along every signal axis (above and to
the left in an image latent, the previous frame in speech), with the extra value K
for "outside the latent". On train signals such tables code the released image model's
indices in 10-16 % fewer bits than one table per channel, the speech model's in 4-8 %
(``benchmarks/context_gain.py``).

A decoder must know the neighbours before the element, so elements are coded in
wavefronts: all elements whose coordinates sum to the same value (none is another's
preceding neighbour) go to the coder in one call, giving one call per wavefront rather
than one per element. Tables are rows of :class:`EntropyTables`, row
``channel * contexts + context``, so the integer pmfs, their validation and the
payload bounds are those of core/entropy.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from unicomp.core.entropy import (
    EntropyTables,
    RansDecoder,
    check_capacity,
    padded_stream,
    rans_encode,
)
from unicomp.errors import FormatError

#: Weight, in elements, of the channel's own symbol distribution mixed into every
#: context's counts, so that contexts rare in the fitting data code like the channel.
PRIOR_ELEMENTS = 4.0


def context_count(num_symbols: int, axes: int) -> int:
    """Number of contexts: each preceding neighbour is a symbol or outside."""
    return (num_symbols + 1) ** axes


def contexts(indices: torch.Tensor, num_symbols: int) -> torch.Tensor:
    """The context of every element of ``indices`` (channels, *axes), same shape."""
    axes = indices.dim() - 1
    padded = torch.nn.functional.pad(indices, (1, 0) * axes, value=num_symbols)
    context = torch.zeros_like(indices)
    for axis in range(1, axes + 1):
        # The neighbour one step back along ``axis``: shift by one there, crop elsewhere.
        neighbour = padded[
            (slice(None),)
            + tuple(slice(0, -1) if a == axis else slice(1, None) for a in range(1, axes + 1))
        ]
        context = context * (num_symbols + 1) + neighbour
    return context


def count_contexts(indices: torch.Tensor, num_symbols: int) -> torch.Tensor:
    """Symbol counts per (channel, context) row, shape (rows, K), of a batch of
    latents' ``indices`` (batch, channels, *axes)."""
    channels, axes = indices.shape[1], indices.dim() - 2
    count = context_count(num_symbols, axes)
    counts = torch.zeros(channels * count * num_symbols, dtype=torch.float64)
    for latent in indices:
        flat = _rows(latent, num_symbols, count) * num_symbols + latent.long()
        counts += torch.bincount(flat.reshape(-1), minlength=counts.numel()).double()
    return counts.reshape(channels * count, num_symbols)


def smoothed_counts(counts: torch.Tensor) -> torch.Tensor:
    """Symbol counts (..., contexts, K) of one channel's contexts, each context given
    PRIOR_ELEMENTS elements of the channel's (add-one smoothed) distribution."""
    channel_pmf = counts.sum(-2, keepdim=True) + 1.0
    channel_pmf = channel_pmf / channel_pmf.sum(-1, keepdim=True)
    return counts + PRIOR_ELEMENTS * channel_pmf


def tables_from_counts(counts: torch.Tensor, channels: int) -> EntropyTables:
    """Context tables from :func:`count_contexts` sums, each context smoothed towards its
    channel's distribution."""
    per_channel = counts.reshape(channels, -1, counts.shape[-1])
    return EntropyTables.from_counts(smoothed_counts(per_channel).flatten(0, 1))


def fit_tables(indices: Sequence[torch.Tensor], num_symbols: int) -> EntropyTables:
    """Context tables for latents like ``indices`` (each of shape (channels, *axes))."""
    counts = torch.stack([count_contexts(latent.unsqueeze(0), num_symbols) for latent in indices])
    return tables_from_counts(counts.sum(dim=0), indices[0].shape[0])


class ContextCoder:
    """``rans16ctx``: every element coded with the table of its channel and context."""

    name = "rans16ctx"

    def encode(self, indices: torch.Tensor, tables: EntropyTables) -> bytes:
        """rANS-code ``indices`` (channels, *axes) with context ``tables``, in wavefronts."""
        count = _check_tables(tables, indices.shape)
        indices = indices.detach().cpu().long()
        rows = _rows(indices, tables.num_symbols, count).reshape(-1).numpy()
        order = np.concatenate(_wavefronts(tuple(indices.shape)))
        symbols = indices.reshape(-1).numpy()
        return rans_encode(symbols[order], rows[order], tables)

    def decode(self, payload: bytes, shape: Sequence[int], tables: EntropyTables) -> torch.Tensor:
        """Inverse of :meth:`encode`; ``shape`` comes from the (validated) header."""
        shape = tuple(shape)
        count = _check_tables(tables, shape)
        total = math.prod(shape)
        check_capacity(len(payload), total // shape[0], tables, rows_per_channel=count)
        num_symbols = tables.num_symbols
        cdfs, sizes, offsets = tables.coder_cdfs()
        decoder = RansDecoder()
        decoder.set_stream(padded_stream(payload, total))
        # Decoded indices with one leading "outside" slice on every signal axis.
        axes = len(shape) - 1
        padded = np.full((shape[0], *(n + 1 for n in shape[1:])), num_symbols, dtype=np.int64)
        strides = np.array(padded.strides[1:], dtype=np.int64) // padded.itemsize
        coordinates = np.indices(shape).reshape(len(shape), -1)
        for front in _wavefronts(shape):
            channel, position = coordinates[0, front], coordinates[1:, front] + 1
            at = channel * padded.strides[0] // padded.itemsize + (position.T @ strides)
            context = np.zeros(front.size, dtype=np.int64)
            for axis in range(axes):
                context = context * (num_symbols + 1) + padded.flat[at - strides[axis]]
            # Each element's own row: the coder converts every table row it is handed
            # to C++ on every call, thousands of rows for each front otherwise.
            rows = (channel * count + context).tolist()
            symbols = decoder.decode_stream(
                list(range(len(rows))),
                [cdfs[row] for row in rows],
                [sizes[row] for row in rows],
                [offsets[row] for row in rows],
            )
            padded.flat[at] = symbols
        inner = (slice(None),) + (slice(1, None),) * axes
        return torch.from_numpy(np.ascontiguousarray(padded[inner]))

    def estimate_bits(self, indices: torch.Tensor, tables: EntropyTables) -> float:
        """Ideal code length of ``indices`` (channels, *axes) under context ``tables``."""
        return float(_element_bits(indices, tables, tables.bits()).sum())

    def bits_per_element(self, indices: torch.Tensor, tables: EntropyTables) -> torch.Tensor:
        """Mean ideal code length per element of each item of ``indices`` (batch, channels,
        *axes) under context ``tables``, shape (batch,)."""
        costs = tables.bits()
        return torch.stack([_element_bits(item, tables, costs).mean() for item in indices])


def _element_bits(
    indices: torch.Tensor, tables: EntropyTables, costs: torch.Tensor
) -> torch.Tensor:
    """Ideal code length of every element of ``indices`` (channels, *axes)."""
    count = _check_tables(tables, indices.shape)
    indices = indices.detach().cpu().long()
    return costs[_rows(indices, tables.num_symbols, count), indices]


def _rows(indices: torch.Tensor, num_symbols: int, count: int) -> torch.Tensor:
    """Each element's table row: its channel's block of contexts, then its context."""
    channel = torch.arange(indices.shape[0]).reshape(-1, *(1,) * (indices.dim() - 1))
    return channel * count + contexts(indices.long(), num_symbols)


def _wavefronts(shape: tuple[int, ...]) -> list[np.ndarray]:
    """Flat element positions grouped by the sum of their signal-axis coordinates."""
    sums = np.indices(shape[1:]).sum(0).reshape(-1) if len(shape) > 1 else np.zeros(1, int)
    per_channel = sums.size
    elements = np.arange(shape[0] * per_channel)
    order = np.argsort(np.tile(sums, shape[0]), kind="stable")
    bounds = np.cumsum(np.bincount(sums))[:-1]
    return np.split(elements[order], bounds * shape[0])


def _check_tables(tables: EntropyTables, shape: Sequence[int]) -> int:
    """Contexts per channel of ``tables`` for a latent of ``shape``; refuse a mismatch."""
    count = context_count(tables.num_symbols, len(shape) - 1)
    if len(shape) < 1 or tables.channels != shape[0] * count:
        raise FormatError(
            f"latent shape {tuple(shape)} does not match context tables of {tables.channels} rows"
        )
    return count

"""Run a fully convolutional function on overlapping tiles, to bound its memory.

Any modality's network maps ``(batch, channels, *extent)`` to ``(batch, channels',
*extent * scale)``. On a huge input (a 50-megapixel photo, an hour of audio) the
activations, and under autograd the saved ones, outgrow memory, so the trailing 1 or 2
axes are cut into windows of ``tile`` input samples overlapping by ``overlap``. Each
window's output is weighted by a ramp that rises across the overlap, and the weighted
sum is normalised, so seams are blended rather than cut. With autograd on, each window
is recomputed in the backward pass (activation checkpointing), so only one window's
activations are ever alive.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from itertools import product

import torch
from torch.utils.checkpoint import checkpoint

TensorFunction = Callable[[torch.Tensor], torch.Tensor]
#: Weight of a window's least trusted outputs (not 0, so every output has a weight).
FLOOR = 1e-6


def windows(length: int, tile: int, overlap: int) -> list[int]:
    """Start positions of windows of ``tile`` covering ``length``, ``overlap`` shared.

    The last window is moved back to end at ``length``, so it may overlap more.
    """
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, tile), got {overlap} for tile {tile}")
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def ramp(size: int, overlap: int, rise: bool, fall: bool) -> torch.Tensor:
    """Blending weights of one window's output along one axis.

    Across an edge shared with a neighbour, the weight stays near zero for the outer
    ``3/8`` of the overlap (where the window's own border still shows through the
    receptive field), then fades linearly to 1 over the middle quarter: neighbours
    cross-fade around the overlap's midpoint. Weights stay positive, so normalising
    never divides by zero.
    """
    weights = torch.ones(size)
    if overlap > 0:
        fade = max(overlap / 4, 1.0)
        position = torch.arange(overlap, dtype=torch.float32) + 0.5
        edge = ((position - (overlap - fade) / 2) / fade).clamp(FLOOR, 1.0)
        if rise:
            weights[:overlap] = torch.minimum(weights[:overlap], edge)
        if fall:
            weights[-overlap:] = torch.minimum(weights[-overlap:], edge.flip(0))
    return weights


def tiled_map(
    function: TensorFunction,
    x: torch.Tensor,
    dims: int,
    tile: int,
    overlap: int,
    scale: Fraction | int = 1,
) -> torch.Tensor:
    """``function(x)`` computed window by window over the last ``dims`` axes of ``x``.

    ``scale`` is the function's output/input length ratio (16 for an image generator,
    1/16 for its encoder); ``tile`` and ``overlap`` must map to whole output samples.
    """
    scale = Fraction(scale)
    extent = x.shape[-dims:]
    for value in (tile, overlap):
        if (value * scale).denominator != 1:
            raise ValueError(f"{value} input samples are not whole outputs at scale {scale}")
    starts = [windows(length, tile, overlap) for length in extent]
    out_overlap = int(overlap * scale)
    total: torch.Tensor | None = None
    norm: torch.Tensor | None = None
    for corner in product(*starts):
        index = (...,) + tuple(
            slice(s, s + min(tile, n)) for s, n in zip(corner, extent, strict=True)
        )
        piece = x[index]
        if torch.is_grad_enabled() and piece.requires_grad:
            y = checkpoint(function, piece, use_reentrant=False)
        else:
            y = function(piece)
        if total is None or norm is None:
            out_extent = [int(n * scale) for n in extent]
            total = y.new_zeros(*y.shape[:-dims], *out_extent)
            norm = y.new_zeros(out_extent)
        weight = _window_weight(corner, starts, y.shape[-dims:], out_overlap)
        out_index = (...,) + tuple(
            slice(int(s * scale), int(s * scale) + size)
            for s, size in zip(corner, y.shape[-dims:], strict=True)
        )
        total[out_index] = total[out_index] + y * weight
        norm[out_index] = norm[out_index] + weight
    assert total is not None and norm is not None
    return total / norm


def _window_weight(
    corner: tuple[int, ...], starts: list[list[int]], size: torch.Size, overlap: int
) -> torch.Tensor:
    """Outer product of the per-axis ramps of one window."""
    weight = torch.ones(())
    for start, axis_starts, length in zip(corner, starts, size, strict=True):
        position = axis_starts.index(start)
        axis = ramp(length, overlap, position > 0, position < len(axis_starts) - 1)
        weight = weight.unsqueeze(-1) * axis
    return weight

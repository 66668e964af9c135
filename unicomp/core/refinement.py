"""A coarse correction layer over the generator's output, carried in the file.

A generator trained for detail drifts in a signal's coarse shape. On 768-px train photos
at 0.12 bpp, image-v1's decodes were off by a smooth error of colour and brightness
(mostly in flat skies and walls) that a grid of 12 x 8 corrections per colour channel
removes: +1.6 dB PSNR, +4.7 dB on flat regions and +3.6 dB chroma PSNR, for 2 % of the
file. So a file may carry, per channel, values on a grid of cells over the signal axes
that the decoder interpolates linearly (``align_corners=False``, edges held) and adds to
the generator's output, in the model's signal space.

The encoder fits the grid by least squares to what the decode misses, quantizes it with
a uniform step and picks, per file, the cell size and step (among the model's
:class:`~unicomp.core.config.RefinementConfig` candidates) that leave the least squared
error within the bits the file has left. Values are coded with a signed Exp-Golomb code,
its order chosen per channel: no tables, so nothing to keep in step between machines.
The decoder interpolates in float64 with elementwise operations only, whose IEEE results
are the same on every CPU.

Section layout (``docs/format.md``): the signal rank ``A`` (varint), ``A`` cell sizes
(varints), the step (float64), then per channel a 5-bit order and its values' codes, in
C order, the bits packed most significant first and the last byte padded with zeros.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from unicomp.core.container import ByteReader, varint_bytes
from unicomp.errors import FormatError

#: Largest Exp-Golomb order (5 bits per channel code it).
MAX_ORDER = 24
_ORDER_BITS = 5
#: Longest run of leading zeros a value's code may have, so values stay within int64;
#: encoders send values under MAX_VALUE, whose codes need at most that many.
MAX_PREFIX = 31
MAX_VALUE = 1 << 29
MAX_CELL = 1 << 20


@dataclass(frozen=True)
class Refinement:
    """Quantized corrections: ``values`` (channels, *grid) times ``step``, on cells of
    ``cells`` samples per signal axis."""

    cells: tuple[int, ...]
    step: float
    values: np.ndarray

    def correction(self, extent: Sequence[int]) -> np.ndarray:
        """The correction (channels, *extent), float64, exactly as every decoder adds it."""
        grid = self.values.astype(np.float64) * self.step
        for axis, size in enumerate(extent, start=1):
            low, high, weight = _interpolation(size, grid.shape[axis])
            shape = [1] * grid.ndim
            shape[axis] = size
            weight = weight.reshape(shape)
            grid = (
                np.take(grid, low, axis=axis) * (1.0 - weight)
                + np.take(grid, high, axis=axis) * weight
            )
        return grid

    def apply(self, x_hat: torch.Tensor) -> torch.Tensor:
        """``x_hat`` (channels, *extent) with the correction added, in its dtype."""
        sum_ = x_hat.detach().cpu().double().numpy() + self.correction(tuple(x_hat.shape[1:]))
        return torch.from_numpy(sum_).to(x_hat.dtype)

    def encode(self) -> bytes:
        """The file's refinement section."""
        head = varint_bytes(len(self.cells)) + b"".join(varint_bytes(c) for c in self.cells)
        bits = _BitWriter()
        for channel in self.values.reshape(self.values.shape[0], -1):
            codes = _zigzag(channel.astype(np.int64))
            order = _best_order(codes)
            bits.write(order, _ORDER_BITS)
            for code in codes.tolist():
                _write_exp_golomb(bits, code, order)
        return head + struct.pack("<d", self.step) + bits.getvalue()


def decode(section: bytes, extent: Sequence[int], channels: int) -> Refinement:
    """Parse a refinement section for a decode of ``channels`` x ``extent`` samples (the
    generator's output); any inconsistency is a FormatError."""
    reader = ByteReader(section, where="refinement section")
    rank = reader.varint("refinement rank", len(extent))
    if rank != len(extent):
        raise FormatError(f"refinement has {rank} axes, the signal {len(extent)}")
    cells = tuple(reader.varint("refinement cell size", MAX_CELL) for _ in range(rank))
    if not all(cells):
        raise FormatError("refinement cell size 0")
    (step,) = struct.unpack("<d", reader.take(8, "refinement step"))
    if not (math.isfinite(step) and step > 0):
        raise FormatError(f"refinement step {step!r} is not a positive number")
    grid = tuple(-(-size // cell) for size, cell in zip(extent, cells, strict=True))
    count = math.prod(grid)
    bits = _BitReader(reader.take(reader.remaining, "refinement values"))
    # Every value takes at least one bit: a count beyond the bits is refused up front.
    if channels * count > bits.remaining:
        raise FormatError(f"refinement holds fewer bits than its {channels * count} values")
    values = np.empty((channels, count), dtype=np.int64)
    for channel in range(channels):
        order = bits.read(_ORDER_BITS)
        if order > MAX_ORDER:
            raise FormatError(f"refinement code order {order} exceeds {MAX_ORDER}")
        codes = np.array([_read_exp_golomb(bits, order) for _ in range(count)], dtype=np.int64)
        values[channel] = _unzigzag(codes)
    bits.finish()
    return Refinement(cells, step, values.reshape(channels, *grid))


@dataclass(frozen=True)
class _Fit:
    """Least-squares terms of one cell size: the best grid, and what scores any grid
    without interpolating it: ``|r - U g|^2 = |r|^2 - 2 <U^T r, g> + <g, U^T U g>``."""

    grid: np.ndarray
    back_projected: np.ndarray  # U^T r
    grams: list[np.ndarray]  # U_a^T U_a per signal axis

    def error(self, grid: np.ndarray, energy: float) -> float:
        gram_grid = grid
        for axis, gram in enumerate(self.grams, start=1):
            gram_grid = _along(gram, gram_grid, axis)
        return (
            energy
            - 2.0 * float((self.back_projected * grid).sum())
            + float((gram_grid * grid).sum())
        )


def fit(residual: np.ndarray, cells: Sequence[int]) -> _Fit:
    """The least-squares grid (channels, *grid) of ``residual`` (channels, *extent).
    Linear interpolation is separable, so the normal equations are too: the grid is
    ``U^T r`` with each axis multiplied by the inverse of that axis's ``U_a^T U_a``."""
    back, grams = residual, []
    for axis, (size, cell) in enumerate(zip(residual.shape[1:], cells, strict=True), start=1):
        matrix = _interpolation_matrix(size, -(-size // cell))
        back = _along(matrix.T, back, axis)
        grams.append(matrix.T @ matrix)
    grid = back
    for axis, gram in enumerate(grams, start=1):
        grid = _along(np.linalg.pinv(gram), grid, axis)
    return _Fit(grid, back, grams)


def choose(
    residual: torch.Tensor, cells: Sequence[int], steps: Sequence[float], budget_bits: int
) -> Refinement | None:
    """The candidate (a cell size on every axis, a step) whose section fits
    ``budget_bits`` and leaves the least squared error of ``residual`` (channels,
    *extent); None if none fits or helps."""
    target = residual.detach().cpu().double().numpy()
    energy = float(np.square(target).sum())
    best, best_error = None, energy
    for cell in cells:
        axes = (cell,) * (target.ndim - 1)
        terms = fit(target, axes)
        for step in steps:
            values = np.rint(terms.grid / step)
            if not values.any() or np.abs(values).max() >= MAX_VALUE:
                continue
            values = values.astype(np.int64)
            if 8 * section_bytes(axes, values) > budget_bits:
                continue
            error = terms.error(values * step, energy)
            if error < best_error:
                best, best_error = Refinement(axes, step, values), error
    return best


def section_bytes(cells: Sequence[int], values: np.ndarray) -> int:
    """The size of the section that codes ``values`` (channels, *grid) on ``cells``."""
    head = len(varint_bytes(len(cells))) + sum(len(varint_bytes(c)) for c in cells) + 8
    codes = _zigzag(values.reshape(values.shape[0], -1))
    bits = sum(_ORDER_BITS + _code_bits(row, _best_order(row)) for row in codes)
    return head + -(-bits // 8)


def _along(matrix: np.ndarray, tensor: np.ndarray, axis: int) -> np.ndarray:
    """``matrix`` applied to ``tensor`` along ``axis``."""
    return np.moveaxis(np.tensordot(matrix, tensor, axes=([1], [axis])), 0, axis)


def _interpolation(size: int, grid: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each of ``size`` samples: its two grid neighbours and the second's weight
    (linear interpolation, sample centres aligned as ``align_corners=False``)."""
    source = (np.arange(size, dtype=np.float64) + 0.5) * (grid / size) - 0.5
    source = np.clip(source, 0.0, grid - 1.0)
    low = np.floor(source).astype(np.int64)
    high = np.minimum(low + 1, grid - 1)
    return low, high, source - low


def _interpolation_matrix(size: int, grid: int) -> np.ndarray:
    low, high, weight = _interpolation(size, grid)
    matrix = np.zeros((size, grid))
    np.add.at(matrix, (np.arange(size), low), 1.0 - weight)
    np.add.at(matrix, (np.arange(size), high), weight)
    return matrix


def _zigzag(values: np.ndarray) -> np.ndarray:
    return np.where(values >= 0, 2 * values, -2 * values - 1)


def _unzigzag(codes: np.ndarray) -> np.ndarray:
    return np.where(codes % 2 == 0, codes // 2, -(codes + 1) // 2)


def _best_order(codes: np.ndarray) -> int:
    """The Exp-Golomb order that codes ``codes`` in the fewest bits (the total is convex
    in the order: the first that costs more than its predecessor ends the search)."""
    best, best_bits = 0, _code_bits(codes, 0)
    for order in range(1, MAX_ORDER + 1):
        bits = _code_bits(codes, order)
        if bits >= best_bits:
            break
        best, best_bits = order, bits
    return best


def _code_bits(codes: np.ndarray, order: int) -> int:
    """Bits of the order-``order`` Exp-Golomb codes of ``codes`` (non-negative)."""
    return int((2 * _bit_length((codes >> order) + 1) - 1 + order).sum())


def _bit_length(values: np.ndarray) -> np.ndarray:
    """Exact bit lengths of positive int64 values."""
    length, rest = np.ones_like(values), values.copy()
    for shift in (32, 16, 8, 4, 2, 1):
        wide = rest >= (1 << shift)
        length += wide * shift
        rest = np.where(wide, rest >> shift, rest)
    return length


def _write_exp_golomb(bits: _BitWriter, code: int, order: int) -> None:
    shifted = (code >> order) + 1
    width = shifted.bit_length()
    bits.write(0, width - 1)
    bits.write(shifted, width)
    bits.write(code & ((1 << order) - 1), order)


def _read_exp_golomb(bits: _BitReader, order: int) -> int:
    zeros = 0
    while bits.read(1) == 0:
        zeros += 1
        if zeros > MAX_PREFIX:
            raise FormatError("refinement value code is longer than allowed")
    shifted = (1 << zeros) | bits.read(zeros)
    return ((shifted - 1) << order) | bits.read(order)


class _BitWriter:
    def __init__(self) -> None:
        self._chunks: list[str] = []

    def write(self, value: int, width: int) -> None:
        if width:
            self._chunks.append(format(value, f"0{width}b"))

    def getvalue(self) -> bytes:
        text = "".join(self._chunks)
        text += "0" * (-len(text) % 8)
        return int(text, 2).to_bytes(len(text) // 8, "big") if text else b""


class _BitReader:
    def __init__(self, data: bytes) -> None:
        self._bits = "".join(format(byte, "08b") for byte in data)
        self._position = 0

    @property
    def remaining(self) -> int:
        return len(self._bits) - self._position

    def read(self, width: int) -> int:
        if width > self.remaining:
            raise FormatError("refinement section is truncated")
        chunk = self._bits[self._position : self._position + width]
        self._position += width
        return int(chunk, 2) if chunk else 0

    def finish(self) -> None:
        """Refuse anything after the values but the zero padding of the last byte."""
        rest = self._bits[self._position :]
        if len(rest) >= 8 or "1" in rest:
            raise FormatError("refinement section has bytes after its values")

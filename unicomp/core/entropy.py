"""Entropy coding of center indices with integer tables and CompressAI's rANS coder.

The tables are per latent channel, learnt from index frequencies on the training data
and stored as integers in the model card: encoder and decoder read the same integers,
so decoding is bit-exact on any machine. Every symbol gets a frequency of at least 1
(of 2**16), so any index stays codable. CompressAI's coder reserves an escape symbol
after the last regular one; it gets frequency 0 here, so a decoder can never enter the
escape path, whatever bytes it is fed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from unicomp.errors import FormatError, ModelError

with warnings.catch_warnings():  # compressai imports torch.jit.script at module level
    warnings.simplefilter("ignore", FutureWarning)
    from compressai.ans import RansDecoder, RansEncoder

PRECISION = 16
TOTAL = 1 << PRECISION
#: rANS state flush (8 bytes) and one 32-bit read per symbol bound what a decoder reads.
_STATE_BYTES = 8
_BYTES_PER_SYMBOL_READ = 4


@dataclass(frozen=True)
class EntropyTables:
    """Per-channel symbol frequencies, integers summing to 2**16, none zero."""

    frequencies: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        if not self.frequencies:
            raise ModelError("entropy tables are empty")
        sizes = {len(row) for row in self.frequencies}
        if len(sizes) != 1 or not 2 <= sizes.pop() <= 256:
            raise ModelError("entropy tables must have one row of 2..256 entries per channel")
        for channel, row in enumerate(self.frequencies):
            if min(row) < 1 or sum(row) != TOTAL:
                raise ModelError(f"entropy table of channel {channel} is not a valid 16-bit pmf")

    @classmethod
    def from_counts(cls, counts: torch.Tensor) -> EntropyTables:
        """Quantize per-channel index counts of shape (channels, K) into tables."""
        rows = tuple(_quantize_pmf(row.tolist()) for row in counts.double())
        return cls(rows)

    @classmethod
    def uniform(cls, channels: int, num_symbols: int) -> EntropyTables:
        """Equal frequencies: what a model has before its statistics are measured."""
        return cls.from_counts(torch.ones(channels, num_symbols))

    @classmethod
    def from_lists(cls, rows: Sequence[Sequence[int]]) -> EntropyTables:
        """Rebuild from the model card's JSON lists."""
        try:
            return cls(tuple(tuple(int(v) for v in row) for row in rows))
        except (TypeError, ValueError) as error:
            raise ModelError(f"entropy tables are malformed: {error}") from None

    @property
    def channels(self) -> int:
        return len(self.frequencies)

    @property
    def num_symbols(self) -> int:
        return len(self.frequencies[0])

    def bits(self) -> torch.Tensor:
        """Cost in bits of every (channel, symbol): what rate-aware search trades against."""
        freq = torch.tensor(self.frequencies, dtype=torch.float64)
        return (PRECISION - torch.log2(freq)).float()

    def estimate_bits(self, indices: torch.Tensor) -> float:
        """Ideal code length of ``indices`` (channels, ...) under these tables."""
        table = self.bits()
        flat = indices.reshape(indices.shape[0], -1).long()
        return float(torch.gather(table, 1, flat).sum())

    def fixed_length_bits(self, count: int) -> float:
        """The paper's cost: ``count`` indices at log2(K) bits each."""
        return count * math.log2(self.num_symbols)

    def _cdfs(self) -> tuple[list[list[int]], list[int], list[int]]:
        cdfs = []
        for row in self.frequencies:
            cdf = [0, *np.cumsum(row).tolist(), TOTAL]  # last entry: the unused escape
            cdfs.append(cdf)
        sizes = [self.num_symbols + 2] * self.channels
        offsets = [0] * self.channels
        return cdfs, sizes, offsets


def count_indices(indices: torch.Tensor, num_symbols: int) -> torch.Tensor:
    """Per-channel symbol counts (channels, K) of a batch of indices (batch, channels, ...)."""
    channels = indices.shape[1]
    flat = indices.transpose(0, 1).reshape(channels, -1)
    offsets = torch.arange(channels).unsqueeze(1) * num_symbols
    counts = torch.bincount((flat + offsets).reshape(-1), minlength=channels * num_symbols)
    return counts.reshape(channels, num_symbols).double()


def encode(indices: torch.Tensor, tables: EntropyTables) -> bytes:
    """rANS-code an index tensor of shape (channels, ...) into a byte string."""
    symbols, channel_of = _flatten(indices, tables)
    if symbols.size and (symbols.min() < 0 or symbols.max() >= tables.num_symbols):
        raise ValueError("indices out of range of the entropy tables")
    cdfs, sizes, offsets = tables._cdfs()
    return RansEncoder().encode_with_indexes(
        symbols.tolist(), channel_of.tolist(), cdfs, sizes, offsets
    )


def decode(payload: bytes, shape: Sequence[int], tables: EntropyTables) -> torch.Tensor:
    """Inverse of :func:`encode`; ``shape`` comes from the (validated) header."""
    if not shape or shape[0] != tables.channels:
        raise FormatError(
            f"latent shape {tuple(shape)} does not match the model's {tables.channels} channels"
        )
    count = math.prod(shape)
    channel_of = np.repeat(np.arange(tables.channels, dtype=np.int32), count // shape[0])
    # The coder reads at most 8 bytes of state plus 4 bytes per symbol and does not
    # check bounds: zero padding keeps a truncated or forged payload inside the buffer.
    padded = payload + bytes(_STATE_BYTES + _BYTES_PER_SYMBOL_READ * count)
    cdfs, sizes, offsets = tables._cdfs()
    symbols = RansDecoder().decode_with_indexes(padded, channel_of.tolist(), cdfs, sizes, offsets)
    return torch.tensor(symbols, dtype=torch.int64).reshape(tuple(shape))


def _flatten(indices: torch.Tensor, tables: EntropyTables) -> tuple[np.ndarray, np.ndarray]:
    if indices.dim() < 1 or indices.shape[0] != tables.channels:
        raise ValueError(
            f"indices of shape {tuple(indices.shape)} do not match {tables.channels} channels"
        )
    symbols = indices.detach().cpu().reshape(-1).numpy().astype(np.int32)
    per_channel = symbols.size // tables.channels
    channel_of = np.repeat(np.arange(tables.channels, dtype=np.int32), per_channel)
    return symbols, channel_of


def _quantize_pmf(counts: Sequence[float]) -> tuple[int, ...]:
    """Integer frequencies summing to 2**16, each >= 1, close to ``counts`` in proportion.

    Starts from the floor of the ideal share, then hands out (or takes back) the
    remainder one unit at a time where that changes the expected code length the least;
    ties go to the lower index, so the result depends only on the counts.
    """
    total = float(sum(counts))
    if total <= 0:
        counts, total = [1.0] * len(counts), float(len(counts))
    ideal = [TOTAL * c / total for c in counts]
    freq = [max(1, math.floor(v)) for v in ideal]
    excess = sum(freq) - TOTAL
    while excess < 0:
        k = max(range(len(freq)), key=lambda i: ideal[i] * math.log((freq[i] + 1) / freq[i]))
        freq[k] += 1
        excess += 1
    while excess > 0:
        candidates = [i for i in range(len(freq)) if freq[i] > 1]
        k = min(candidates, key=lambda i: ideal[i] * math.log(freq[i] / (freq[i] - 1)))
        freq[k] -= 1
        excess -= 1
    return tuple(freq)

"""Entropy coding of center indices with integer tables and CompressAI's rANS coder.

The tables are per latent channel, learnt from index frequencies on the training data
and stored as integers in the model card: encoder and decoder read the same integers,
so decoding is bit-exact on any machine. Every symbol gets a frequency of at least 1
(of 2**16), so any index stays codable. CompressAI's coder reserves an escape symbol
after the last regular one; it gets frequency 0 here, so a decoder can never enter the
escape path, whatever bytes it is fed.
"""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
import math
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from unicomp.errors import FormatError, ModelError

RANS_MODULE = "compressai.ans"


def _rans_extension() -> ModuleType:
    """compressai's rANS extension module, loaded from its file on its own.

    ``import compressai.ans`` first runs compressai's package ``__init__``, which
    imports its model zoo, datasets and torchvision: seconds that every ``unicomp``
    command would pay for two classes of a C++ extension that needs none of it. The
    module is registered under its own name, so a later ``import compressai`` (the
    learned baselines) reuses it instead of loading the extension twice.
    """
    if RANS_MODULE in sys.modules:
        return sys.modules[RANS_MODULE]
    package = importlib.util.find_spec("compressai")
    for folder in (package.submodule_search_locations or []) if package else []:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = Path(folder) / f"ans{suffix}"
            if not path.is_file():
                continue
            spec = importlib.util.spec_from_file_location(RANS_MODULE, path)
            if spec is not None and spec.loader is not None:
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                sys.modules[RANS_MODULE] = module
                return module
    with warnings.catch_warnings():  # compressai imports torch.jit.script at module level
        warnings.simplefilter("ignore", FutureWarning)
        return importlib.import_module(RANS_MODULE)


_RANS = _rans_extension()
RansEncoder, RansDecoder = _RANS.RansEncoder, _RANS.RansDecoder

PRECISION = 16
TOTAL = 1 << PRECISION
#: The coder writes its 64-bit state (8 bytes) last and 32-bit words before it; a
#: decoder reads the state, then at most one word per symbol.
_STATE_BYTES = 8
_WORD_BYTES = 4
#: The encoder's state starts at 2**31; dividing it by a frequency f happens only when
#: it is at least 2**15 * f, so one symbol loses at most this factor to rounding.
_START_STATE_BITS = 31
_ROUNDING_FACTOR = 1 - 2.0**-15
#: compressai's encoder writes into one word per symbol but may need n/2 + 3 words, so
#: below 6 symbols it overruns the heap: shorter streams get trailing filler symbols,
#: which a decoder never reaches since it decodes only the latent's count.
_MIN_ENCODED_SYMBOLS = 6


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

    def coder_cdfs(self) -> tuple[list[list[int]], list[int], list[int]]:
        """Each row's CDF, size and offset, in the form CompressAI's coder takes (the
        coder only reads them)."""
        return self._coder_cdfs

    @functools.cached_property
    def _coder_cdfs(self) -> tuple[list[list[int]], list[int], list[int]]:
        # Computed once per tables: per-file rate control codes a file many times, and
        # context tables have thousands of rows.
        rows = np.asarray(self.frequencies, dtype=np.int64)
        cdfs = np.zeros((rows.shape[0], rows.shape[1] + 2), dtype=np.int64)
        cdfs[:, 1:-1] = np.cumsum(rows, axis=1)
        cdfs[:, -1] = TOTAL  # the unused escape
        sizes = [self.num_symbols + 2] * self.channels
        offsets = [0] * self.channels
        return cdfs.tolist(), sizes, offsets


def count_indices(indices: torch.Tensor, num_symbols: int) -> torch.Tensor:
    """Per-channel symbol counts (channels, K) of a batch of indices (batch, channels, ...)."""
    channels = indices.shape[1]
    flat = indices.transpose(0, 1).reshape(channels, -1)
    offsets = torch.arange(channels).unsqueeze(1) * num_symbols
    counts = torch.bincount((flat + offsets).reshape(-1), minlength=channels * num_symbols)
    return counts.reshape(channels, num_symbols).double()


class PerChannelCoder:
    """``rans16``: every element coded with its channel's table (docs/format.md)."""

    name = "rans16"

    def encode(self, indices: torch.Tensor, tables: EntropyTables) -> bytes:
        """rANS-code an index tensor of shape (channels, ...) into a byte string."""
        symbols, channel_of = _flatten(indices, tables)
        return rans_encode(symbols, channel_of, tables)

    def decode(self, payload: bytes, shape: Sequence[int], tables: EntropyTables) -> torch.Tensor:
        """Inverse of :meth:`encode`; ``shape`` comes from the (validated) header."""
        if not shape or shape[0] != tables.channels:
            raise FormatError(
                f"latent shape {tuple(shape)} does not match the model's {tables.channels} channels"
            )
        count = math.prod(shape)
        check_capacity(len(payload), count // shape[0], tables)
        channel_of = np.repeat(np.arange(tables.channels, dtype=np.int32), count // shape[0])
        cdfs, sizes, offsets = tables.coder_cdfs()
        symbols = RansDecoder().decode_with_indexes(
            padded_stream(payload, count), channel_of.tolist(), cdfs, sizes, offsets
        )
        return torch.tensor(symbols, dtype=torch.int64).reshape(tuple(shape))

    def estimate_bits(self, indices: torch.Tensor, tables: EntropyTables) -> float:
        """Ideal code length of ``indices`` (channels, ...)."""
        return tables.estimate_bits(indices)

    def bits_per_element(self, indices: torch.Tensor, tables: EntropyTables) -> torch.Tensor:
        """Mean ideal code length per element of each item of ``indices`` (batch,
        channels, ...), shape (batch,)."""
        return mean_code_length(indices, tables.bits())


def mean_code_length(indices: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """Mean code length per element of each item of ``indices`` (batch, channels, ...)
    when symbol ``k`` of channel ``c`` costs ``bits[c, k]``, shape (batch,)."""
    flat = indices.reshape(indices.shape[0], indices.shape[1], -1)
    costs = bits.unsqueeze(0).expand(indices.shape[0], -1, -1)
    return torch.gather(costs, 2, flat).flatten(1).mean(dim=1)


def rans_encode(symbols: np.ndarray, rows: np.ndarray, tables: EntropyTables) -> bytes:
    """rANS-code ``symbols``, each with the table row of the same position in ``rows``,
    in the order a decoder will decode them."""
    if symbols.size and (symbols.min() < 0 or symbols.max() >= tables.num_symbols):
        raise ValueError("indices out of range of the entropy tables")
    filler = [0] * max(0, _MIN_ENCODED_SYMBOLS - symbols.size)
    cdfs, sizes, offsets = tables.coder_cdfs()
    return RansEncoder().encode_with_indexes(
        symbols.tolist() + filler, rows.tolist() + filler, cdfs, sizes, offsets
    )


def padded_stream(payload: bytes, count: int) -> bytes:
    """``payload`` followed by zeros: the coder reads at most one word per symbol and
    does not check bounds, so this keeps a truncated or forged payload inside the buffer."""
    return payload + bytes(_WORD_BYTES * count)


def check_capacity(
    payload_bytes: int, per_channel: int, tables: EntropyTables, rows_per_channel: int = 1
) -> None:
    """Refuse a latent the payload cannot hold, before a symbol is decoded.

    A header may declare any latent up to the container's maximum, and the decoder
    would decode that many symbols from any bytes. But every symbol of frequency f
    grows the encoder's state by log2(2**16 / f) bits, less rounding (never below
    zero); the state starts at 2**31, ends below 2**64 and sheds 32 bits per word
    written before the 8-byte state. So a payload of P bytes holds symbols whose
    growth sums to under 8P - 31 bits, and each channel's likeliest symbol (in any of
    its ``rows_per_channel`` rows) bounds how many elements per channel that is.
    Decoding work thus stays proportional to the bytes given.
    """
    if payload_bytes < _STATE_BYTES or payload_bytes % _WORD_BYTES:
        raise FormatError(f"payload of {payload_bytes} bytes is not a rANS stream")
    rows = tables.frequencies
    likeliest = [
        max(max(row) for row in rows[start : start + rows_per_channel])
        for start in range(0, len(rows), rows_per_channel)
    ]
    least_bits = sum(max(0.0, math.log2(TOTAL / f * _ROUNDING_FACTOR)) for f in likeliest)
    if per_channel * least_bits > 8 * payload_bytes - _START_STATE_BITS + 1:  # 1: float slack
        raise FormatError(
            f"payload of {payload_bytes} bytes cannot hold {per_channel} elements per channel"
        )


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

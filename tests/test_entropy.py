"""rANS coding with integer tables: exact, close to the entropy, robust to garbage."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from unicomp.core.coders import PER_CHANNEL
from unicomp.core.entropy import TOTAL, EntropyTables
from unicomp.errors import FormatError, ModelError


def skewed_indices(channels: int, count: int, k: int, seed: int = 0) -> torch.Tensor:
    """Per-channel geometric-ish index distributions, like a trained latent's."""
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for channel in range(channels):
        weights = torch.exp(-torch.arange(k, dtype=torch.float64) * (0.3 + 0.2 * channel))
        rows.append(torch.multinomial(weights, count, replacement=True, generator=generator))
    return torch.stack(rows)


@given(st.lists(st.integers(0, 10**6), min_size=2, max_size=256))
def test_quantized_tables_are_valid_pmfs(counts: list[int]) -> None:
    tables = EntropyTables.from_counts(torch.tensor([counts], dtype=torch.float64))
    row = tables.frequencies[0]
    assert sum(row) == TOTAL and min(row) >= 1 and len(row) == len(counts)


def test_quantized_tables_follow_the_counts() -> None:
    tables = EntropyTables.from_counts(torch.tensor([[1000.0, 3000.0, 0.0, 4000.0]]))
    assert tables.frequencies[0] == (8192, 24576, 1, 32767)


def test_round_trip_is_bit_exact() -> None:
    indices = skewed_indices(4, 5000, 16)
    tables = EntropyTables.from_counts(
        torch.stack([torch.bincount(row, minlength=16) for row in indices]).double()
    )
    payload = PER_CHANNEL.encode(indices.reshape(4, 50, 100), tables)
    decoded = PER_CHANNEL.decode(payload, (4, 50, 100), tables)
    assert torch.equal(decoded, indices.reshape(4, 50, 100))


def test_code_length_is_within_two_percent_of_the_estimate() -> None:
    indices = skewed_indices(8, 4000, 16, seed=1)
    tables = EntropyTables.from_counts(
        torch.stack([torch.bincount(row, minlength=16) for row in indices]).double()
    )
    payload = PER_CHANNEL.encode(indices, tables)
    estimate = tables.estimate_bits(indices)
    assert 8 * len(payload) <= 1.02 * estimate
    assert 8 * len(payload) >= estimate - 64  # cannot beat the entropy by more than the flush


def test_skewed_indices_beat_the_fixed_length_code() -> None:
    indices = skewed_indices(2, 3000, 16, seed=2)
    tables = EntropyTables.from_counts(
        torch.stack([torch.bincount(row, minlength=16) for row in indices]).double()
    )
    payload_bits = 8 * len(PER_CHANNEL.encode(indices, tables))
    assert payload_bits < 0.8 * tables.fixed_length_bits(indices.numel())
    assert tables.fixed_length_bits(indices.numel()) == indices.numel() * math.log2(16)


def test_symbols_unseen_in_training_stay_codable() -> None:
    tables = EntropyTables.from_counts(torch.tensor([[100.0, 0.0, 0.0, 0.0]]))
    indices = torch.tensor([[3, 2, 1, 0, 3]])
    payload = PER_CHANNEL.encode(indices, tables)
    assert torch.equal(PER_CHANNEL.decode(payload, (1, 5), tables), indices)


def test_bits_table_matches_the_frequencies() -> None:
    tables = EntropyTables.from_counts(torch.tensor([[1.0, 1.0, 2.0]]))
    expected = [16 - math.log2(f) for f in tables.frequencies[0]]
    assert tables.bits()[0].tolist() == pytest.approx(expected)


@settings(max_examples=200)
@given(st.binary(max_size=64), st.integers(1, 300))
def test_decoding_garbage_returns_valid_indices_or_a_format_error(
    payload: bytes, count: int
) -> None:
    tables = EntropyTables.from_counts(torch.tensor([[5.0, 1.0, 1.0, 9.0], [1.0, 1.0, 1.0, 1.0]]))
    try:
        decoded = PER_CHANNEL.decode(payload, (2, count), tables)
    except FormatError:
        return
    assert decoded.shape == (2, count)
    assert decoded.min() >= 0 and decoded.max() < 4


@settings(max_examples=80, deadline=None)
@given(
    st.integers(1, 4),
    st.integers(2, 16),
    st.integers(1, 3000),
    st.sampled_from([0.0, 1.0, 8.0]),
    st.booleans(),
    st.integers(0, 2**32 - 1),
)
def test_the_payload_bound_never_refuses_a_real_stream(
    channels: int, symbols: int, count: int, skew: float, likeliest: bool, seed: int
) -> None:
    """Uniform tables put a stream right at the bound; all-likeliest symbols are its cheapest."""
    generator = torch.Generator().manual_seed(seed)
    tables = EntropyTables.from_counts(
        torch.rand(channels, symbols, generator=generator, dtype=torch.float64) ** skew
    )
    freq = torch.tensor(tables.frequencies, dtype=torch.float64)
    if likeliest:
        indices = freq.argmax(dim=1, keepdim=True).expand(channels, count).contiguous()
    else:
        indices = torch.multinomial(freq, count, replacement=True, generator=generator)
    payload = PER_CHANNEL.encode(indices, tables)
    assert torch.equal(PER_CHANNEL.decode(payload, tuple(indices.shape), tables), indices)


def test_a_latent_its_payload_cannot_hold_is_refused() -> None:
    tables = EntropyTables.uniform(2, 8)
    payload = PER_CHANNEL.encode(torch.zeros(2, 100, dtype=torch.int64), tables)
    with pytest.raises(FormatError, match="cannot hold 200 elements per channel"):
        PER_CHANNEL.decode(payload, (2, 200), tables)
    for cut in (payload[:-1], payload[:4], b""):
        with pytest.raises(FormatError, match="is not a rANS stream"):
            PER_CHANNEL.decode(cut, (2, 100), tables)


@pytest.mark.parametrize("count", range(1, 8))
def test_tiny_latents_encode_without_overrunning_the_coder(count: int) -> None:
    tables = EntropyTables(((1, TOTAL - 1),))  # symbol 0 costs 16 bits: the most words
    indices = torch.zeros(1, count, dtype=torch.int64)
    for _ in range(50):
        payload = PER_CHANNEL.encode(indices, tables)
        assert torch.equal(PER_CHANNEL.decode(payload, (1, count), tables), indices)


def test_invalid_tables_are_refused() -> None:
    with pytest.raises(ModelError):
        EntropyTables(((TOTAL, 0),))
    with pytest.raises(ModelError):
        EntropyTables(((1, 2),))
    with pytest.raises(ModelError):
        EntropyTables.from_lists([["a", "b"]])

"""Context coding: exact in any latent shape, cheaper on smooth latents, safe on garbage."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from unicomp.core import context_coding, entropy
from unicomp.core.coders import CONTEXT, PER_CHANNEL
from unicomp.core.entropy import EntropyTables, count_indices
from unicomp.errors import FormatError


def smooth_indices(shape: tuple[int, ...], k: int, keep: float, seed: int = 0) -> torch.Tensor:
    """Indices that repeat their preceding neighbour along the last axis with
    probability ``keep``, like a latent's runs of its channel's cheapest center."""
    generator = torch.Generator().manual_seed(seed)
    fresh = torch.randint(0, k, shape, generator=generator)
    repeat = torch.rand(shape, generator=generator) < keep
    indices = fresh.clone()
    for position in range(1, shape[-1]):
        indices[..., position] = torch.where(
            repeat[..., position], indices[..., position - 1], fresh[..., position]
        )
    return indices


def test_contexts_combine_the_preceding_neighbours_with_outside_at_the_border() -> None:
    indices = torch.tensor([[[0, 1], [2, 3]]])  # one channel, 2x2, K = 4: outside is 4
    assert context_coding.contexts(indices, 4).tolist() == [
        [[4 * 5 + 4, 4 * 5 + 0], [0 * 5 + 4, 1 * 5 + 2]]
    ]
    assert context_coding.context_count(4, 2) == 25


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(1, 6), min_size=1, max_size=4),
    st.integers(2, 9),
    st.floats(0, 1),
    st.integers(0, 2**16),
)
def test_round_trip_is_bit_exact_in_any_shape(
    shape: list[int], k: int, keep: float, seed: int
) -> None:
    indices = smooth_indices(tuple(shape), k, keep, seed)
    tables = context_coding.fit_tables([smooth_indices(tuple(shape), k, keep, seed + 1)], k)
    payload = CONTEXT.encode(indices, tables)
    assert torch.equal(CONTEXT.decode(payload, tuple(shape), tables), indices)


def test_smooth_latents_cost_far_less_than_with_per_channel_tables() -> None:
    shape = (4, 24, 40)
    training = [smooth_indices(shape, 8, 0.8, seed) for seed in range(3)]
    test = smooth_indices(shape, 8, 0.8, seed=9)
    per_channel = EntropyTables.from_counts(sum(count_indices(t[None], 8) for t in training))
    contexts = context_coding.fit_tables(training, 8)
    plain = len(PER_CHANNEL.encode(test, per_channel))
    coded = CONTEXT.encode(test, contexts)
    assert len(coded) < 0.6 * plain
    estimate = CONTEXT.estimate_bits(test, contexts)
    assert estimate <= 8 * len(coded) <= 1.02 * estimate + 64  # rANS flush
    assert torch.equal(CONTEXT.decode(coded, shape, contexts), test)


def test_contexts_unseen_in_fitting_code_like_their_channel() -> None:
    """A context absent from the fitting data falls back to the channel's distribution."""
    fitted = context_coding.fit_tables([torch.zeros(1, 5, 5, dtype=torch.int64)], 3)
    rows = torch.tensor(fitted.frequencies, dtype=torch.float64)
    unseen = context_coding.context_count(3, 2) - 1  # both neighbours are symbol 2
    assert rows[unseen].argmax() == 0 and rows[unseen, 0] > 0.5 * entropy.TOTAL


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200), st.integers(1, 30))
def test_decoding_garbage_returns_valid_indices_or_a_format_error(
    payload: bytes, width: int
) -> None:
    tables = context_coding.fit_tables([smooth_indices((2, 3, 7), 4, 0.7)], 4)
    try:
        decoded = CONTEXT.decode(payload, (2, 3, width), tables)
    except FormatError:
        return
    assert decoded.shape == (2, 3, width)
    assert decoded.min() >= 0 and decoded.max() < 4


def test_a_latent_its_payload_cannot_hold_is_refused() -> None:
    tables = context_coding.fit_tables([smooth_indices((2, 8, 8), 4, 0.9)], 4)
    payload = CONTEXT.encode(torch.zeros(2, 8, 8, dtype=torch.int64), tables)
    with pytest.raises(FormatError, match="cannot hold"):
        CONTEXT.decode(payload, (2, 8, 100_000), tables)


def test_tables_of_another_latent_rank_are_refused() -> None:
    tables = context_coding.fit_tables([smooth_indices((2, 8, 8), 4, 0.9)], 4)
    with pytest.raises(FormatError, match="does not match context tables"):
        CONTEXT.decode(b"\0" * 8, (2, 8), tables)

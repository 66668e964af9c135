"""The gradient guard (core/clipping.py): a spike is scaled to a multiple of the recent
norms, a non-finite gradient skips the step, and the history survives a checkpoint."""

import math

import pytest
import torch
from torch import nn

from unicomp.core.clipping import CLIP_FACTOR, GradientGuard
from unicomp.core.trainer import _guarded_step


def _with_gradient(parameter: nn.Parameter, value: float) -> list[nn.Parameter]:
    parameter.grad = torch.full_like(parameter, value)
    return [parameter]


def test_a_spike_is_clipped_to_a_multiple_of_the_recent_norms() -> None:
    parameter = nn.Parameter(torch.zeros(4))
    guard = GradientGuard()
    for _ in range(50):
        assert guard.clip(_with_gradient(parameter, 0.5)) == pytest.approx(1.0)
    assert guard.average == pytest.approx(1.0)
    norm = guard.clip(_with_gradient(parameter, 500.0))
    assert norm == pytest.approx(1000.0)
    assert float(parameter.grad.norm()) == pytest.approx(CLIP_FACTOR, rel=1e-4)
    assert guard.average < 1.1  # the spike counts only as what was let through


def test_the_first_gradient_after_a_reset_passes_unclipped() -> None:
    parameter = nn.Parameter(torch.zeros(4))
    guard = GradientGuard()
    guard.clip(_with_gradient(parameter, 0.5))
    guard.reset()
    guard.clip(_with_gradient(parameter, 50.0))
    assert float(parameter.grad.norm()) == pytest.approx(100.0)


def test_a_step_with_a_non_finite_gradient_is_skipped() -> None:
    layer = nn.Linear(3, 2)
    optimizer = torch.optim.Adam(layer.parameters(), lr=0.1)
    guard = GradientGuard()
    layer(torch.ones(1, 3)).sum().backward()
    _guarded_step(optimizer, guard)
    before = [p.detach().clone() for p in layer.parameters()]
    average = guard.average
    layer.weight.grad.fill_(math.nan)
    assert math.isnan(_guarded_step(optimizer, guard))
    assert all(torch.equal(a, b) for a, b in zip(before, layer.parameters(), strict=True))
    assert guard.average == average


def test_the_history_round_trips() -> None:
    parameter = nn.Parameter(torch.zeros(2))
    guard = GradientGuard()
    guard.clip(_with_gradient(parameter, 3.0))
    restored = GradientGuard()
    restored.load_state_dict(guard.state_dict())
    assert restored.average == guard.average

"""The shared network blocks: divisive normalization."""

from __future__ import annotations

import pytest
import torch

from unicomp.core.networks import DivisiveNormalization


def reference_norm(layer: DivisiveNormalization, x: torch.Tensor) -> torch.Tensor:
    """sqrt(beta_i + sum_j gamma_ij x_j**2) at every position, channel by channel."""
    beta = layer.beta_root.detach().square() + layer.BETA_FLOOR
    gamma = layer.gamma_root.detach().square()
    squares = x.square().movedim(1, -1)  # channels last, to mix them with gamma
    return (beta + squares @ gamma.T).movedim(-1, 1).sqrt()


@pytest.mark.parametrize("dims", [1, 2])
@pytest.mark.parametrize("inverse", [False, True])
def test_each_channel_is_scaled_by_its_own_row_of_the_coupling(dims: int, inverse: bool) -> None:
    torch.manual_seed(0)
    layer = DivisiveNormalization(dims, 5, inverse=inverse)
    with torch.no_grad():  # an asymmetric coupling, so rows and columns cannot be confused
        layer.gamma_root.copy_(torch.rand(5, 5))
        layer.beta_root.copy_(torch.rand(5) + 0.5)
    x = 3 * torch.randn((2, 5) + (7,) * dims)
    norm = reference_norm(layer, x)
    expected = x * norm if inverse else x / norm
    assert torch.allclose(layer(x), expected, rtol=1e-5, atol=1e-6)


def test_it_starts_near_identity_for_small_inputs_and_compresses_large_ones() -> None:
    layer = DivisiveNormalization(2, 3)
    small, large = torch.full((1, 3, 2, 2), 0.01), torch.full((1, 3, 2, 2), 100.0)
    assert torch.allclose(layer(small), small, rtol=1e-3)
    assert (layer(large).abs() < 0.05 * large).all()  # ~1/sqrt(0.1) at most
    assert torch.equal(layer(-large), -layer(large))


def test_the_coupling_between_channels_learns_from_its_first_step() -> None:
    layer = DivisiveNormalization(2, 4)
    layer(torch.randn(2, 4, 6, 6)).square().sum().backward()
    off_diagonal = ~torch.eye(4, dtype=torch.bool)
    assert (layer.gamma_root.grad[off_diagonal] != 0).all()
    assert (layer.beta_root.grad != 0).all()

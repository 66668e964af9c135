"""The non-uniform scalar quantizer: k-means placement and the three training modes."""

from __future__ import annotations

import pytest
import torch

from unicomp.core.config import QuantizerConfig
from unicomp.core.quantizer import Quantizer


def quantizer(k: int = 4) -> Quantizer:
    return Quantizer(QuantizerConfig(num_centers=k))


def test_kmeans_finds_the_clusters_of_the_data() -> None:
    generator = torch.Generator().manual_seed(0)
    truth = torch.tensor([-3.0, -0.5, 1.0, 4.0])
    samples = truth[torch.randint(0, 4, (20000,), generator=generator)]
    samples = samples + 0.05 * torch.randn(20000, generator=generator)
    q = quantizer()
    q.fit_kmeans(samples, generator)
    assert torch.allclose(q.centers.detach(), truth, atol=0.02)


def test_kmeans_on_constant_data_keeps_centers_distinct() -> None:
    q = quantizer()
    q.fit_kmeans(torch.zeros(1000))
    assert torch.unique(q.centers.detach()).numel() == 4


def test_float_mode_is_the_identity() -> None:
    z = torch.randn(2, 3, 5)
    assert torch.equal(quantizer()(z, "float"), z)


@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_forward_value_is_always_a_center(mode: str) -> None:
    q = quantizer()
    z = torch.randn(2, 3, 7)
    out = q(z, mode)
    assert torch.isin(out.detach(), q.centers.detach()).all()
    assert torch.equal(out.detach(), q.dequantize(q.indices(z)))


def test_soft_mode_gradient_follows_the_soft_assignment() -> None:
    q = quantizer()
    z = torch.tensor([0.3, -0.95, 0.9], requires_grad=True)
    q(z, "soft").sum().backward()
    grad = z.grad.clone()
    # Not straight-through (which would give ones), yet nonzero between centers.
    assert not torch.allclose(grad, torch.ones(3))
    assert (grad > 0).all()
    assert q.centers.grad is not None and q.centers.grad.abs().sum() > 0


def test_higher_temperature_makes_the_soft_gradient_sharper() -> None:
    q = quantizer()
    z = torch.tensor([0.0])  # on a cell boundary of the centers -1, -1/3, 1/3, 1

    def gradient_at(progress: float, point: float) -> float:
        q.set_soft_progress(progress)
        value = torch.tensor([point], requires_grad=True)
        q(value, "soft").sum().backward()
        return float(value.grad)

    assert z.numel() == 1
    # Near a center the soft gradient vanishes as the temperature rises...
    assert gradient_at(1.0, 1 / 3 + 0.01) < gradient_at(0.0, 1 / 3 + 0.01)
    # ...while across a boundary it grows.
    assert gradient_at(1.0, 0.0) > gradient_at(0.0, 0.0)


def test_hard_mode_is_straight_through_to_z_and_trains_the_centers() -> None:
    q = quantizer()
    z = torch.tensor([0.3, -0.95, 0.9, 0.95], requires_grad=True)
    (q(z, "hard") * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    assert torch.equal(z.grad, torch.tensor([1.0, 2.0, 3.0, 4.0]))
    # The two values nearest the top center (1.0) both feed its gradient.
    assert float(q.centers.grad[3]) == pytest.approx(7.0)


def test_clipped_straight_through_stops_at_the_outermost_centers() -> None:
    """Beyond the centers' range moving z changes nothing decoded, so no gradient says
    it would; inside the range the gradient passes as before, and the centers learn."""
    q = Quantizer(QuantizerConfig(num_centers=4, clipped_straight_through=True))
    z = torch.tensor([-1.7, -0.95, 0.3, 0.9, 1.0001, 2.5], requires_grad=True)
    weights = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    out = q(z, "hard")
    (out * weights).sum().backward()
    assert torch.equal(out.detach(), q.dequantize(q.indices(z)))
    assert torch.equal(z.grad, torch.tensor([0.0, 2.0, 3.0, 4.0, 0.0, 0.0]))
    # The clipped values still feed their center's gradient: the range can grow.
    assert float(q.centers.grad[0]) == pytest.approx(3.0)
    assert float(q.centers.grad[3]) == pytest.approx(15.0)


def test_indices_pick_the_nearest_center() -> None:
    q = quantizer()
    q.centers.data = torch.tensor([-2.0, 0.0, 0.5, 3.0])
    z = torch.tensor([-5.0, -0.9, 0.2, 0.3, 1.7, 9.0])
    assert q.indices(z).tolist() == [0, 1, 1, 2, 2, 3]


def test_center_count_is_validated() -> None:
    with pytest.raises(ValueError, match="2..256"):
        quantizer(1)


def test_a_pinned_zero_center_stays_at_zero_through_training() -> None:
    """Low-rate points shrink latents towards 0; the center there must not drift away."""
    quantizer = Quantizer(QuantizerConfig(num_centers=5, zero_center=True))
    samples = torch.cat([torch.randn(4000) * 0.3 - 3, torch.randn(4000) * 0.3 + 3])
    quantizer.fit_kmeans(samples, torch.Generator().manual_seed(0))
    assert (quantizer.centers == 0).sum() == 1  # exactly 0, where k-means put none
    before = quantizer.centers.detach().clone()
    optimizer = torch.optim.Adam(quantizer.parameters(), lr=0.1)
    z = torch.randn(256) * 3
    for _ in range(20):
        optimizer.zero_grad()
        ((quantizer(z, "hard") - z.detach() * 1.3) ** 2).mean().backward()
        optimizer.step()
    moved = quantizer.centers.detach() != before
    assert (quantizer.centers == 0).sum() == 1 and moved.sum() == 4

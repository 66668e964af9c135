"""Scalar non-uniform quantizer: every latent value is replaced by one of K centers.

The centers are parameters of the model: k-means initialises them at the start of the
soft phase, the optimiser refines them, and the decoder uses exactly the saved values.
Three modes follow the training phases: ``float`` (identity), ``soft`` (forward value
hard, gradient of the soft assignment) and ``hard`` (argmin, straight-through to z,
optionally only within the centers' range).
"""

from __future__ import annotations

import torch
from torch import nn

from unicomp.core.config import Mode, QuantizerConfig

__all__ = ["Mode", "Quantizer"]


class Quantizer(nn.Module):
    """K learnable scalar centers shared by every latent element."""

    def __init__(self, config: QuantizerConfig) -> None:
        super().__init__()
        if not 2 <= config.num_centers <= 256:
            raise ValueError(f"num_centers must be in 2..256, got {config.num_centers}")
        self.config = config
        initial = torch.linspace(-1.0, 1.0, config.num_centers)
        self.centers = nn.Parameter(initial)
        self.temperature = config.temperature_start
        if config.zero_center:
            self.centers.register_hook(self._hold_zero)

    def _hold_zero(self, gradient: torch.Tensor) -> torch.Tensor:
        """No gradient for a center at exactly 0, so optimisers leave it there."""
        return gradient * (self.centers.detach() != 0)

    @property
    def num_centers(self) -> int:
        return self.centers.numel()

    def forward(self, z: torch.Tensor, mode: Mode) -> torch.Tensor:
        """Quantize ``z`` as the given training phase prescribes."""
        if mode == "float":
            return z
        hard = self.centers[self.indices(z)]
        if mode == "hard":
            # Value from the centers (they still learn), gradient straight through to z.
            passed = self._within_range(z) if self.config.clipped_straight_through else z
            return hard + (passed - passed.detach())
        soft = self._soft(z)
        return soft + (hard - soft).detach()

    def _within_range(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` clamped to the centers' range: its gradient is z's inside the range and
        zero beyond it, where the outermost center is what z gets whatever its value.
        Passed there, the gradient would push z and the point gains ever further out
        (the soft phase's assignment gradient vanishes there too)."""
        centers = self.centers.detach()
        return z.clamp(centers.min(), centers.max())

    def indices(self, z: torch.Tensor) -> torch.Tensor:
        """Index of the nearest center for every element of ``z``."""
        distances = (z.detach().unsqueeze(-1) - self.centers.detach()).abs()
        return distances.argmin(dim=-1)

    def dequantize(self, indices: torch.Tensor) -> torch.Tensor:
        """Center values for an index tensor (what the decoder feeds the generator)."""
        return self.centers.detach()[indices.long()]

    def assignment(self, z: torch.Tensor, move_centers: bool = True) -> torch.Tensor:
        """Soft assignment of every element of ``z`` to the centers at the current
        temperature, shape (*z.shape, K): what the soft phase and the rate term
        (core/rate_model.py) differentiate through. The rate term must not move the
        centers (``move_centers=False``): moving them sharpens the soft assignment onto
        cheap centers without changing a single hard index."""
        centers = self.centers if move_centers else self.centers.detach()
        squared = (z.unsqueeze(-1) - centers) ** 2
        return torch.softmax(-self.temperature * squared / self._mean_squared_gap(), dim=-1)

    def _soft(self, z: torch.Tensor) -> torch.Tensor:
        return (self.assignment(z) * self.centers).sum(dim=-1)

    def _mean_squared_gap(self) -> torch.Tensor:
        gaps = torch.diff(torch.sort(self.centers.detach()).values)
        return (gaps**2).mean().clamp_min(1e-12)

    def set_soft_progress(self, fraction: float) -> None:
        """Anneal the temperature geometrically from start to end over the soft phase."""
        fraction = min(max(fraction, 0.0), 1.0)
        start, end = self.config.temperature_start, self.config.temperature_end
        self.temperature = start * (end / start) ** fraction

    @torch.no_grad()
    def fit_kmeans(self, samples: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Place the centers by 1-D k-means (Lloyd) on latent ``samples``.

        Initialised at quantiles, so the result is deterministic and no center starts
        empty; a center that loses all its points keeps its place.
        """
        values = samples.detach().flatten().float()
        limit = self.config.kmeans_samples
        if values.numel() > limit:
            pick = torch.randperm(values.numel(), generator=generator)[:limit]
            values = values[pick]
        values = torch.sort(values).values
        k = self.num_centers
        quantiles = (torch.arange(k, dtype=torch.float64) + 0.5) / k
        centers = torch.quantile(values.double(), quantiles).float()
        for _ in range(self.config.kmeans_iterations):
            assignment = (values.unsqueeze(-1) - centers).abs().argmin(dim=-1)
            sums = torch.zeros(k).index_add_(0, assignment, values)
            counts = torch.bincount(assignment, minlength=k).float()
            updated = torch.where(counts > 0, sums / counts.clamp_min(1), centers)
            if torch.allclose(updated, centers):
                break
            centers = updated
        centers = _spread_duplicates(torch.sort(centers).values)
        if self.config.zero_center:
            centers[centers.abs().argmin()] = 0.0
        self.centers.copy_(centers)


def _spread_duplicates(centers: torch.Tensor) -> torch.Tensor:
    """Nudge equal centers apart so indices stay unambiguous (constant latents)."""
    for i in range(1, centers.numel()):
        if centers[i] <= centers[i - 1]:
            centers[i] = centers[i - 1] + 1e-3
    return centers

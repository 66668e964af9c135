"""Holding each operating point of a variable-rate training at its target rate.

Rate weights alone did not spread the points apart. image-v2's run 6 trained four points
at weights 500 times apart; at step 4250 they coded train photos at 0.057-0.074 bpp,
and the gains between them had contracted from their start. speech-v2's run 3 ended
with three of its four points at 1.43-1.45 kbit/s. The rate term's gradient through
the soft assignment is too weak to set a point's quantizer step against the
distortion's pull.

So, given ``[train] rate_targets`` (bits per latent element, as the training tables
count them), two controllers act after every rate-aware step on a moving average of
each point's bits:

- the rate weights share a multiplier, raised while the points spend more than their
  targets (dual ascent on a Lagrange multiplier): the rate term in the loss keeps
  shaping the encoder, and its level follows the targets;
- each point's latent gains share a scale, centered over the points, moved down while
  the point spends more than its share of the targets. Centered, the scales cannot
  drift with the encoder's output scale (core/trainer.py, PointGains).

Both are buffers of the autoencoder, saved and restored with it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

#: Each step's bits weigh this much in a point's moving average.
AVERAGE_DECAY = 0.05
#: Log-scale step per step and unit of log rate error: a point 10 % off its share
#: moves its scale by ~0.1 % a step, and reaches it within a few hundred steps.
SCALE_STEP = 0.01
#: Log-multiplier step per step and unit of log rate error: slower than the scales,
#: since the encoder takes many steps to answer a change of weight.
MULTIPLIER_STEP = 0.002
#: The multiplier stays within this factor of 1 either way.
MULTIPLIER_BOUND = 1000.0


class RateSteering(nn.Module):
    """The controllers of ``targets`` (points,) bits per element."""

    def __init__(self, targets: torch.Tensor) -> None:
        super().__init__()
        self.targets: torch.Tensor
        self.average: torch.Tensor
        self.log_multiplier: torch.Tensor
        self.register_buffer("targets", targets.float().clone())
        self.register_buffer("average", torch.zeros_like(self.targets))
        self.register_buffer("log_multiplier", torch.zeros(()))

    def initial_log_scales(self) -> torch.Tensor:
        """Where the points' scales start: a point's scale in proportion to its target
        rate, centered (at moderate rates bits grow about as fast as the log scale)."""
        logs = self.targets.log()
        return logs - logs.mean()

    def multiplier(self) -> torch.Tensor:
        return self.log_multiplier.exp()

    @torch.no_grad()
    def update(
        self, bit_sums: torch.Tensor, counts: torch.Tensor, log_scale: torch.Tensor | None
    ) -> None:
        """Take in a step's summed bits per element ``bit_sums`` over ``counts`` items per
        point (points,), then move the multiplier and (several points) ``log_scale``
        (points,) in place."""
        seen = counts > 0
        means = bit_sums[seen] / counts[seen]
        fresh = self.average[seen] == 0
        self.average[seen] = torch.where(
            fresh, means, torch.lerp(self.average[seen], means, AVERAGE_DECAY)
        )
        if not (self.average > 0).all():
            return  # some point not seen yet
        errors = (self.average / self.targets).log()
        bound = math.log(MULTIPLIER_BOUND)
        self.log_multiplier.add_(MULTIPLIER_STEP * errors.mean()).clamp_(-bound, bound)
        if log_scale is not None:
            log_scale.sub_(SCALE_STEP * (errors - errors.mean()))

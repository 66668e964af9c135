"""Adaptive gradient clipping: a guard against a few steps wrecking a GAN run.

speech-v2's first run diverged at step 9980 of 20000: within 20 steps its
reconstruction loss went from 0.17 to 1566 and never came back (the critic's loss
reached 2.6e7), and the checkpoint it kept saving was the wrecked one. Clipping each
step's gradient norm to a multiple of its recent average (as AutoClip, Seetharaman et
al. 2020, clips to a percentile of the history) bounds what a bad batch can start,
without a threshold to tune per modality or loss scale; a step whose gradient is not
finite is skipped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

#: A gradient may be this many times its recent average norm before it is scaled down.
CLIP_FACTOR = 4.0
#: The average forgets over about 1 / DECAY steps.
DECAY = 0.02


class GradientGuard:
    """Clips the gradients of one optimizer's parameters to ``CLIP_FACTOR`` times the
    moving average of the norms it let through."""

    def __init__(self) -> None:
        self.average: float | None = None

    def clip(self, parameters: Iterable[nn.Parameter]) -> float:
        """Clip the gradients in place; return their norm before clipping (NaN or inf:
        the step must be skipped, and the average is left as it was)."""
        with_gradients = [p for p in parameters if p.grad is not None]
        gradients = [p.grad for p in with_gradients if p.grad is not None]
        norm = float(torch.nn.utils.get_total_norm(gradients))
        if not math.isfinite(norm):
            return norm
        limit = math.inf if self.average is None else CLIP_FACTOR * self.average
        if norm > limit:
            torch.nn.utils.clip_grads_with_norm_(with_gradients, limit, torch.tensor(norm))
        passed = min(norm, limit)
        self.average = (
            passed if self.average is None else self.average + DECAY * (passed - self.average)
        )
        return norm

    def reset(self) -> None:
        """Forget the history, for when a phase change changes the gradients' scale."""
        self.average = None

    def state_dict(self) -> dict[str, Any]:
        return {"average": self.average}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.average = state["average"]

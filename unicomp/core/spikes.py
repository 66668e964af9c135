"""Loss-spike detection: a diverging GAN run rolls back instead of saving its wreck.

speech-v2-deep blew up at step ~6730 of 20000: within 20 steps its commitment loss went
from 0.009 to 1419 and its generator loss from 0.26 to 356, although every gradient was
clipped (core/clipping.py: Adam scales a clipped gradient back to a full-size step), and
every checkpoint after it held the wreck. speech-v2's first run and image-v2's run 2 had
died the same way. The trainer feeds each step's generator loss to a
:class:`SpikeDetector`; a loss that is not finite, or a short average ``SPIKE_FACTOR``
times the long one, sends the run back to its last checkpoint, which it writes only
while the run is calm.

On the logs of every healthy run so far (image-v2, image-deep, image-wide, speech-v2
and its ablations), no logged step's generator loss exceeded 2.4 times the average
before it; the divergences reached 10^2 to 10^7 times within 20 steps.
"""

from __future__ import annotations

import math
from typing import Any

#: The short average forgets over about 1 / FAST_DECAY steps, the long one over
#: 1 / SLOW_DECAY.
FAST_DECAY = 0.2
SLOW_DECAY = 0.01
#: The run has diverged when the short average exceeds the long one this many times.
SPIKE_FACTOR = 4.0
#: A checkpoint waits while the short average exceeds the long one this many times.
CALM_FACTOR = 1.5
#: Steps after a reset (run start, phase change) before the averages are compared.
WARMUP = 20


class SpikeDetector:
    """Two moving averages of one loss: a short one that reacts within a few steps and
    a long one that says what the loss normally is."""

    def __init__(self) -> None:
        self.fast: float | None = None
        self.slow: float | None = None
        self.seen = 0
        self.finite = True

    def reset(self) -> None:
        """Forget the averages, for when a phase change changes the loss's scale."""
        self.fast = self.slow = None
        self.seen = 0
        self.finite = True

    def update(self, loss: float) -> None:
        """Account for one step's loss."""
        self.finite = math.isfinite(loss)
        if not self.finite:
            return
        self.seen += 1
        if self.fast is None or self.slow is None:
            self.fast = self.slow = loss
            return
        self.fast += FAST_DECAY * (loss - self.fast)
        self.slow += SLOW_DECAY * (loss - self.slow)

    @property
    def diverged(self) -> bool:
        """The last loss was not finite, or the short average spiked."""
        return not self.finite or self._ratio() > SPIKE_FACTOR

    @property
    def calm(self) -> bool:
        """Safe to checkpoint: nothing is building up."""
        return self.finite and self._ratio() <= CALM_FACTOR

    def _ratio(self) -> float:
        if self.seen < WARMUP or self.fast is None or self.slow is None or self.slow <= 0:
            return 1.0
        return self.fast / self.slow

    def state_dict(self) -> dict[str, Any]:
        return {"fast": self.fast, "slow": self.slow, "seen": self.seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.fast, self.slow, self.seen = state["fast"], state["slow"], int(state["seen"])
        self.finite = True

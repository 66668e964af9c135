"""Synthetic sensor readings, for trying the plugin without real data (and for tests)."""

from __future__ import annotations

import numpy as np


def synthetic_reading(rng: np.random.Generator, length: int = 2000) -> np.ndarray:
    """A few random sinusoids plus a little noise and an offset: easy to learn, not trivial."""
    t = np.arange(length)
    waves = sum(
        rng.uniform(0.5, 2.0) * np.sin(2 * np.pi * rng.uniform(0.002, 0.05) * t + rng.uniform(0, 6))
        for _ in range(3)
    )
    return waves + 0.05 * rng.standard_normal(length) + rng.uniform(-5, 5)

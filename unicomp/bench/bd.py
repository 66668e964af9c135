"""Bjøntegaard delta metrics: the average gap between two rate–quality curves.

VCEG-M33 (Bjøntegaard, 2001) fitted one cubic polynomial per curve, which can swing
wildly between points; the JCT-VC common-test-conditions spreadsheet (JCTVC-L1100) and
the JVET ones since interpolate piecewise with shape-preserving cubic Hermite
polynomials (PCHIP) instead. That is what is done here, integrating the cubics exactly:

* BD-rate: the mean of log10(rate) over the quality interval both curves cover, test
  minus anchor, as a percentage (-10 means the test needs 10 % fewer bits);
* BD-quality (BD-PSNR when quality is PSNR): the mean quality difference over the
  log-rate interval both cover, in the metric's own unit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.interpolate import PchipInterpolator

from unicomp.errors import InputError

#: PCHIP needs two points per curve (one segment, then it is linear).
MIN_POINTS = 2


def bd_rate(
    anchor_rates: Sequence[float],
    anchor_quality: Sequence[float],
    test_rates: Sequence[float],
    test_quality: Sequence[float],
) -> float:
    """Percent rate change of the test curve against the anchor at equal quality."""
    anchor = _curve(anchor_rates, anchor_quality, "anchor")
    test = _curve(test_rates, test_quality, "test")
    gap = _mean_gap(anchor[1], anchor[0], test[1], test[0], "quality")
    return (10.0**gap - 1.0) * 100.0


def bd_quality(
    anchor_rates: Sequence[float],
    anchor_quality: Sequence[float],
    test_rates: Sequence[float],
    test_quality: Sequence[float],
) -> float:
    """Mean quality change of the test curve against the anchor at equal rate."""
    anchor = _curve(anchor_rates, anchor_quality, "anchor")
    test = _curve(test_rates, test_quality, "test")
    return _mean_gap(anchor[0], anchor[1], test[0], test[1], "log-rate")


def _curve(
    rates: Sequence[float], quality: Sequence[float], which: str
) -> tuple[np.ndarray, np.ndarray]:
    """(log10 rates, quality) of one curve, checked."""
    r = np.asarray(rates, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    if r.shape != q.shape or r.ndim != 1:
        raise InputError(f"{which} curve has {r.size} rates but {q.size} quality values")
    if r.size < MIN_POINTS:
        raise InputError(f"{which} curve has {r.size} point(s); BD metrics need {MIN_POINTS}")
    if not (np.isfinite(r).all() and np.isfinite(q).all()):
        raise InputError(f"{which} curve has non-finite values")
    if (r <= 0).any():
        raise InputError(f"{which} curve has a rate <= 0: {r.min():g}")
    return np.log10(r), q


def _mean_gap(
    anchor_x: np.ndarray, anchor_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, axis: str
) -> float:
    """Mean of test_y(x) - anchor_y(x) over the x interval both curves cover."""
    low = max(anchor_x.min(), test_x.min())
    high = min(anchor_x.max(), test_x.max())
    if not high > low:
        raise InputError(
            f"the curves do not overlap in {axis} (anchor {anchor_x.min():.4g}..."
            f"{anchor_x.max():.4g}, test {test_x.min():.4g}...{test_x.max():.4g})"
        )
    return _mean(test_x, test_y, low, high, "test") - _mean(anchor_x, anchor_y, low, high, "anchor")


def _mean(x: np.ndarray, y: np.ndarray, low: float, high: float, which: str) -> float:
    order = np.argsort(x)
    x, y = x[order], y[order]
    if (np.diff(x) <= 0).any():
        raise InputError(f"{which} curve has two points at the same abscissa")
    value = float(PchipInterpolator(x, y).integrate(low, high)) / (high - low)
    if not math.isfinite(value):
        raise InputError(f"{which} curve could not be interpolated")
    return value

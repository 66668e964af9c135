"""Every codec's quality at the anchor's own rates: "what does JPEG give at 0.12 bpp?".

BD metrics average a gap over a whole rate interval; this reads it point by point. For
each point of the anchor's curve (its mean rate at one setting), every other codec's
mean metrics are interpolated at that rate from its own sweep, piecewise-linearly in
log10(rate) between the two measured points around it. Linear, not the PCHIP curves of
:mod:`unicomp.bench.bd`, so that every value is a weighted mean of two measurements: no
overshoot, and no need to drop the settings of a non-monotone sweep (a quality as a
function of rate needs no inversion). Log-rate makes the roughly geometric rate steps of
a sweep even. A rate outside the codec's measured range is marked :data:`BELOW` or
:data:`ABOVE` instead of extrapolated: a codec that cannot go down to 0.06 bpp says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from unicomp.bench.base import Quality
from unicomp.bench.summary import Curve, Point

#: The rate lies below the codec's lowest measured rate, or above its highest.
BELOW = "below"
ABOVE = "above"


@dataclass(frozen=True)
class AtRate:
    """One codec at one point of the anchor: its metrics at that rate, or why none."""

    codec: str
    #: The anchor's setting and its mean rate there.
    setting: Quality
    rate: float
    #: Interpolated means (the anchor's own measured ones); empty when ``outside``.
    metrics: dict[str, float]
    #: :data:`BELOW` or :data:`ABOVE` the codec's measured rates, else None.
    outside: str | None = None
    #: The codec's lowest (below) or highest (above) measured rate.
    limit: float | None = None


def quality_at_anchor_rates(
    anchor: Curve, curves: Sequence[Curve], metrics: Sequence[str]
) -> list[AtRate]:
    """Per anchor point, the anchor's own values, then every other curve's at its rate."""
    others = [c for c in curves if c.codec != anchor.codec and _usable(c.points)]
    results = []
    for point in anchor.points:
        results.append(AtRate(anchor.codec, point.quality, point.rate, dict(point.metrics)))
        results += [_at(curve, point, metrics) for curve in others]
    return results


def outside(rates: Sequence[float], rate: float) -> str | None:
    """:data:`BELOW` or :data:`ABOVE` when ``rate`` is out of ``rates``' span (ends are in)."""
    if rate < min(rates):
        return BELOW
    if rate > max(rates):
        return ABOVE
    return None


def interpolate(rates: Sequence[float], values: Sequence[float], rate: float) -> float:
    """``values`` (one per rate, any order) at ``rate``, linear in log10(rate).

    ``rate`` must lie within ``rates`` (see :func:`outside`); a NaN next to it gives NaN.
    """
    order = np.argsort(rates, kind="stable")
    logs = np.log10(np.asarray(rates, dtype=np.float64)[order])
    return float(np.interp(math.log10(rate), logs, np.asarray(values, dtype=np.float64)[order]))


def _at(curve: Curve, anchor_point: Point, metrics: Sequence[str]) -> AtRate:
    points = _usable(curve.points)
    rates = [p.rate for p in points]
    setting, rate = anchor_point.quality, anchor_point.rate
    where = outside(rates, rate)
    if where is not None:
        limit = min(rates) if where == BELOW else max(rates)
        return AtRate(curve.codec, setting, rate, {}, where, limit)
    values = {
        m: interpolate(rates, [p.metrics.get(m, math.nan) for p in points], rate) for m in metrics
    }
    return AtRate(curve.codec, setting, rate, values)


def _usable(points: Sequence[Point]) -> list[Point]:
    """The points a log-rate axis can hold."""
    return [p for p in points if p.rate > 0 and math.isfinite(p.rate)]

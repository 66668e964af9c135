"""Per-file rate control: every file at most at the asked rate, and at most 3 % under it.

Operating points (core/points.py) are calibrated so that files meet their labels on
average; one file lands anywhere from 20 % under its label to 20 % over. A user who asks
for 2 kbit/s to fit a 2 kbit/s channel needs every file within it. The weight of the
rate term in the projection is the encoder's own choice: a file names its operating
point, whose tables and generator decode it, never the weight. So the encoder searches
the weight for each file, measuring the file's real size (header included) at each
try, from the point's calibrated weight: the rate falls as the weight grows. The latent
search (core/admm.py) then runs at the weight found and may only send iterates whose
file lands in the same window (:func:`window`).

Which point codes the file is chosen per file too. Each point's generator is tuned to
the indices its calibrated weight gives (core/point_tuning.py), and decodes indices of
a weight far from it badly: a file full of texture needs a much larger weight than
average to meet a rate, and a flat one a smaller. On a train photo at 0.2 bpp the
0.25 bpp point, pushed to 12 times its weight, decoded 2 dB worse than the 0.12 bpp
point near its own weight. So every point that meets the rate is fitted, and the one
used nearest its calibrated weight codes the file; where two are about as near, both
projections are decoded and the less distorted wins. On train photos the nearest point
alone was the least distorted in 38 of 40 cases, but lost up to 56 % in distortion in
the other two, both near-ties.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from unicomp.core.points import OperatingPoint, rate_range
from unicomp.errors import UsageError

#: A file may land at most this fraction under the asked rate.
TOLERANCE = 0.03
#: Projections tried per file at most; a 768x512 photo's costs about 25 ms.
MAX_TRIALS = 24
#: The weight is searched within this factor of the point's own either way, then at 0.
REACH = 1e4


@dataclass(frozen=True)
class RateFit:
    """The rate weight found for one file, the projection it gives, that file's rate,
    and how many projections were tried."""

    weight: float
    indices: torch.Tensor
    rate: float
    trials: int


class OutOfReach(Exception):
    """Even the largest weight's file exceeds the asked rate (its header alone, nearly);
    ``smallest`` is the smallest file tried."""

    def __init__(self, smallest: RateFit) -> None:
        super().__init__(smallest.rate)
        self.smallest = smallest


def serving_points(
    points: Sequence[OperatingPoint], rate: float, unit: str, model: str
) -> list[OperatingPoint]:
    """The points that may code a file at ``rate``: every labelled one. A rate outside
    the labels' range raises UsageError naming the range."""
    span = rate_range(points, unit)
    if span is None:
        raise UsageError(
            f"model {model!r} has no calibrated rates, so it cannot aim at {rate:g} {unit}; "
            "leave the rate out"
        )
    low, high = span
    if not low <= rate <= high:
        raise UsageError(
            f"{rate:g} {unit} is outside what model {model!r} codes: {low:g} to {high:g} {unit}"
        )
    return [p for p in points if p.label is not None]


#: Fits whose weights lie within this factor of their calibrated ones as the nearest's
#: are near-ties: the encoder decodes each to choose.
NEAR_TIE = 2.0
#: Where a search starts for a point calibrated without a rate term (weight 0).
UNCALIBRATED_WEIGHT = 1.0


def nearest_calibration(
    fits: Sequence[tuple[OperatingPoint, RateFit]],
) -> list[tuple[OperatingPoint, RateFit]]:
    """The fits whose weight lies nearest their point's calibrated one, in log weight:
    the nearest, and any within a factor of :data:`NEAR_TIE` of as near."""

    def distance(fit: tuple[OperatingPoint, RateFit]) -> float:
        point, found = fit
        if found.weight <= 0:
            return math.inf
        return abs(math.log(found.weight / start_weight(point)))

    ranked = sorted(fits, key=distance)
    nearest = distance(ranked[0])
    return [f for f in ranked if distance(f) <= nearest + math.log(NEAR_TIE)]


def choose_fit(
    fits: Sequence[tuple[OperatingPoint, RateFit]],
    target: float,
    distortion: Callable[[OperatingPoint, RateFit], float],
) -> tuple[OperatingPoint, RateFit]:
    """The point, among those fitted for one file, that codes it: of the fits in the
    window, the one nearest its calibration (:func:`nearest_calibration`; near-ties go
    to the least ``distortion`` of the decoded projection); without any in the window,
    the one with the highest rate."""
    met = [f for f in fits if f[1].rate >= (1 - TOLERANCE) * target]
    if not met:
        return max(fits, key=lambda f: f[1].rate)
    kept = nearest_calibration(met)
    if len(kept) == 1:
        return kept[0]
    return min(kept, key=lambda f: distortion(*f))


def start_weight(point: OperatingPoint) -> float:
    """The weight a point's search starts from: the one it was calibrated at."""
    return point.rate_weight if point.rate_weight > 0 else UNCALIBRATED_WEIGHT


def window(target: float, fit: RateFit) -> tuple[float, float]:
    """The rates a searched file may have: at most ``target``, and at least the lower
    bound of the tolerance, or the fitted projection's rate where it fell short of it."""
    return min((1 - TOLERANCE) * target, fit.rate), target


def fit_weight(
    rate_at: Callable[[float], tuple[float, torch.Tensor]], target: float, start: float
) -> RateFit:
    """The weight whose projection's file lands in [(1 - TOLERANCE) * target, target].

    ``rate_at(weight)`` is the real rate of the file of the projection at ``weight``,
    and that projection. The search brackets the target from ``start`` (the point's
    calibrated weight), then interpolates in log-log space, where rate against weight is
    nearly a straight line. Without a weight in the window, the highest rate under the
    target wins; with none under it, :class:`OutOfReach` is raised.
    """
    least = (1 - TOLERANCE) * target
    aim = (1 - TOLERANCE / 2) * target
    over: RateFit | None = None  # the largest weight tried whose file is too large
    under: RateFit | None = None  # the smallest weight tried whose file fits
    best: RateFit | None = None
    weight, trials = start, 0
    while trials < MAX_TRIALS:
        trials += 1
        rate, indices = rate_at(weight)
        fit = RateFit(weight, indices, rate, trials)
        if rate > target:
            over = fit
        else:
            under = fit
            if best is None or rate > best.rate:
                best = fit
            if rate >= least:
                break
        next_weight = _next_weight(over, under, aim, start)
        if next_weight is None:
            break
        weight = next_weight
    if best is None:
        assert over is not None
        raise OutOfReach(RateFit(over.weight, over.indices, over.rate, trials))
    return RateFit(best.weight, best.indices, best.rate, trials)


def _next_weight(
    over: RateFit | None, under: RateFit | None, aim: float, start: float
) -> float | None:
    """The next weight to try, or None when the bracket cannot shrink further."""
    if under is None:
        assert over is not None
        return over.weight * 4 if over.weight < start * REACH else None
    if over is None:
        if under.weight == 0:
            return None
        return under.weight / 4 if under.weight > start / REACH else 0.0
    if under.weight - over.weight <= 1e-9 * under.weight:
        return None
    if over.weight == 0:
        return under.weight / 4
    # Secant in log-log space (rates are positive: a file has a header), kept inside
    # the middle of the bracket.
    low, high = math.log(over.weight), math.log(under.weight)
    slope = (math.log(under.rate) - math.log(over.rate)) / (high - low)
    guess = low + (math.log(aim) - math.log(over.rate)) / slope
    margin = 0.1 * (high - low)
    return math.exp(min(max(guess, low + margin), high - margin))

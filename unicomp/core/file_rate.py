"""Per-file rate control: every file at most at the asked rate, and at most 3 % under it.

Operating points (core/points.py) are calibrated so that files meet their labels on
average; one file lands anywhere from 20 % under its label to 20 % over. A user who asks
for 2 kbit/s to fit a 2 kbit/s channel needs every file within it. The weight of the
rate term in the projection is the encoder's own choice: a file names its operating
point, whose tables and generator decode it, never the weight. So the encoder searches
the weight for each file, measuring the file's real size (header included) at each
try, from the point's calibrated weight: the rate falls as the weight grows. The latent
search (core/admm.py) then starts from the weight found, projects each iterate with the
weight that puts its file back in the same window (:func:`window`), and sends the least
distorted iterate inside it.

Which point codes the file is chosen per file too. Each point's generator is tuned to
the indices its calibrated weight gives (core/point_tuning.py) and decodes the indices
of a weight far from it badly, in either direction: a file full of texture needs a much
larger weight than average to meet a rate, a flat one a much smaller. So the encoder
climbs the model's rungs, every point and the blends between neighbours
(core/blends.py), each at its own weight, to the highest whose file still fits the
rate, and fits the weight from there: it moves little, as the next rung's file is
already too large.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from unicomp.core.blends import STEPS, blend_label
from unicomp.core.points import OperatingPoint, rate_range, rated_labels
from unicomp.errors import UsageError

#: Where a search starts for a point calibrated without a rate term (weight 0).
UNCALIBRATED_WEIGHT = 1.0
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


def rungs(points: Sequence[OperatingPoint], rate: float, unit: str, model: str) -> list[str]:
    """The labels of a model's points and of the blends between neighbours, from the
    lowest rate to the highest (core/blends.py). A rate outside the points' range
    raises UsageError naming the range."""
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
    labels = rated_labels(points, unit)
    ladder = [labels[0]]
    for lower, upper in zip(labels, labels[1:], strict=False):
        ladder += [blend_label(lower, upper, step) for step in range(1, STEPS)] + [upper]
    return ladder


def climb(own_rate: Callable[[int], float], count: int, target: float) -> int:
    """The highest of ``count`` rungs whose file at its own weight fits ``target``
    (rung 0 if none does), by bisection: rates grow along the rungs."""
    low, high = 0, count - 1
    if own_rate(high) <= target:
        return high
    while low < high:
        middle = (low + high + 1) // 2
        if own_rate(middle) <= target:
            low = middle
        else:
            high = middle - 1
    return low


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

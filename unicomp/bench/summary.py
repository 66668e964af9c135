"""From per-item records to one rate–quality curve per codec, and BD metrics between them.

A curve point is the mean over the items at one quality setting (CompressAI's
convention, so the JSON it writes is what its plots expect); failed items are left out
and counted. BD metrics are computed on these mean curves against one anchor.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from unicomp.bench.base import Quality
from unicomp.bench.bd import bd_quality, bd_rate
from unicomp.bench.records import Record
from unicomp.errors import InputError

#: BD metrics over a sliver of common range say little; below this share they are flagged.
MIN_OVERLAP_SHARE = 0.25


@dataclass(frozen=True)
class Point:
    """One quality setting of one codec, averaged over the items it succeeded on."""

    quality: Quality
    items: int
    rate: float
    metrics: dict[str, float]
    encode_seconds: float
    decode_seconds: float
    encode_peak_bytes: int | None
    decode_peak_bytes: int | None
    #: Speed per unit of signal (the modality's optional ``size_unit``), pooled over the
    #: items: all encode seconds over all their size, and all their size over all decode
    #: seconds (a real-time factor when the unit is seconds). None without a size unit.
    encode_seconds_per_unit: float | None = None
    decode_units_per_second: float | None = None


@dataclass(frozen=True)
class Curve:
    """A codec's sweep: its points from lowest to highest setting, and what failed."""

    codec: str
    description: str
    points: list[Point]
    failures: list[str]


@dataclass(frozen=True)
class BdResult:
    """BD-rate (percent) and BD-quality of one codec against the anchor for one metric."""

    codec: str
    metric: str
    rate_change: float | None
    quality_change: float | None
    note: str | None = None


def summarize(
    records: Sequence[Record], codec: str, description: str, qualities: Sequence[Quality]
) -> Curve:
    """The curve of ``codec`` from its records, points in the order of ``qualities``."""
    mine = [r for r in records if r.codec == codec and r.description == description]
    points, failures = [], []
    for quality in qualities:
        at = [r for r in mine if str(r.quality) == str(quality)]
        failures += [f"{r.item} at {quality}: {r.error}" for r in at if r.error]
        done = [r for r in at if r.error is None]
        if done:
            points.append(_mean_point(quality, done))
    return Curve(codec, description, points, failures)


def bd_against(anchor: Curve, curves: Sequence[Curve], metrics: Sequence[str]) -> list[BdResult]:
    """BD metrics of every other curve against ``anchor``, per metric; why, where none."""
    results = []
    for curve in curves:
        if curve.codec == anchor.codec:
            continue
        for metric in metrics:
            results.append(_bd(anchor, curve, metric))
    return results


def efficient_points(points: Sequence[Point], metric: str) -> tuple[list[float], list[float]]:
    """(rates, values) of the points no other point beats with fewer or equal bits.

    A setting that spends more bits for less quality would make "the rate at a given
    quality" ambiguous, so BD metrics interpolate only the efficient frontier.
    """
    rates: list[float] = []
    values: list[float] = []
    for point in sorted(points, key=lambda p: p.rate):
        value = point.metrics.get(metric, math.nan)
        if not math.isfinite(value) or not point.rate > 0:
            continue
        if values and value <= values[-1]:
            continue
        if rates and point.rate == rates[-1]:
            rates.pop()
            values.pop()
        rates.append(point.rate)
        values.append(value)
    return rates, values


def _bd(anchor: Curve, curve: Curve, metric: str) -> BdResult:
    anchor_rates, anchor_values = efficient_points(anchor.points, metric)
    rates, values = efficient_points(curve.points, metric)
    outcomes: list[float | None] = []
    notes = []
    for function in (bd_rate, bd_quality):
        try:
            outcomes.append(function(anchor_rates, anchor_values, rates, values))
        except InputError as error:
            outcomes.append(None)
            notes.append(str(error))
    for axis, a, b, result in (
        ("quality", anchor_values, values, outcomes[0]),
        ("log-rate", _logs(anchor_rates), _logs(rates), outcomes[1]),
    ):
        if result is None:  # also where a curve has no finite value to compare
            continue
        share = _overlap_share(a, b)
        if share < MIN_OVERLAP_SHARE:
            notes.append(f"the curves share only {share:.0%} of their {axis} range: unreliable")
    note = "; ".join(dict.fromkeys(notes)) or None  # both BD metrics may fail alike
    return BdResult(curve.codec, metric, outcomes[0], outcomes[1], note)


def _overlap_share(a: Sequence[float], b: Sequence[float]) -> float:
    """The common interval as a share of the shorter curve's extent."""
    overlap = min(max(a), max(b)) - max(min(a), min(b))
    shorter = min(max(a) - min(a), max(b) - min(b))
    return max(0.0, overlap) / shorter if shorter > 0 else 0.0


def _logs(rates: Sequence[float]) -> list[float]:
    return [math.log10(r) for r in rates]


def _mean_point(quality: Quality, records: Sequence[Record]) -> Point:
    names = sorted({name for r in records for name in r.metrics})
    timed = [  # (size, encode s, decode s) of the measured records
        (r.size, r.encode_seconds, r.decode_seconds)
        for r in records
        if r.size is not None and r.encode_seconds is not None and r.decode_seconds is not None
    ]
    sizes, encode, decode = ([t[i] for t in timed] for i in range(3))
    return Point(
        quality=quality,
        items=len(records),
        rate=statistics.fmean(r.rate for r in records if r.rate is not None),
        metrics={
            name: finite_mean(r.metrics.get(name, math.nan) for r in records) for name in names
        },
        encode_seconds=finite_mean(r.encode_seconds for r in records),
        decode_seconds=finite_mean(r.decode_seconds for r in records),
        encode_peak_bytes=_max([r.encode_peak_bytes for r in records]),
        decode_peak_bytes=_max([r.decode_peak_bytes for r in records]),
        encode_seconds_per_unit=_ratio(encode, sizes),
        decode_units_per_second=_ratio(sizes, decode),
    )


def finite_mean(values: Iterable[float | None]) -> float:
    """Mean of the finite values (PESQ is NaN where it finds no speech, chroma PSNR for a
    grey photo); NaN if none."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.fmean(finite) if finite else math.nan


def _ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float | None:
    """Sum over sum (pooled: long items weigh by their length); None if undefined."""
    below = sum(denominators)
    return sum(numerators) / below if below > 0 else None


def _max(values: Sequence[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None

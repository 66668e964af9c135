"""Calibrate a model's operating points so that real files meet their rate labels.

An operating point (core/points.py) is a rate label such as "0.12bpp" or "2kbps" with
its own rate-term weight and entropy tables (core/rate_control.py): per-channel ones
that price bits in the search, context ones (core/context_coding.py) that code its
files, both fitted to the indices the point's projection makes of the calibration
signals. The weight is first
solved on encoder outputs of training signals, where it is cheap; the real rate of a
file then differs (the latent search moves indices, the header costs bits), so the aim
is corrected by the real rates of earlier tries and solved again, until a real rate
lands just below the label. Calibration data must be training data, never evaluation
data.

With a :class:`GeneratorTuning`, each point also gets its own generator, fine-tuned on
the indices the point transmits (core/point_tuning.py).
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch

from unicomp.core.codec import Codec
from unicomp.core.coders import CONTEXT
from unicomp.core.entropy import EntropyTables
from unicomp.core.point_tuning import GeneratorTuning, tune_generator
from unicomp.core.points import OperatingPoint, parse_rate
from unicomp.core.rate_control import find_operating_point, fit_point_context_tables
from unicomp.errors import UsageError

#: Every label is calibrated from trained points whose mean rate with no rate term is at
#: least this many times the label's: files of one point spread 20 % either side of its
#: mean, so a point barely above a label lands it at a weight near 0, with no room to
#: code a detailed file below it at its own generator. For the top label, which has no
#: rung above it (core/file_rate.py), a file below the mean must also reach it at weight
#: 0. Lower labels once took 1.05: image-v2's 0.06bpp then kept its 0.15 bpp start over
#: its 0.066 one anyway (1.7 dB more on the evaluate photos), and image-v4's took its
#: 0.064 bpp point at weight 3.5e-5, five decades from the 0.03bpp point's, and coded
#: photos between them up to 2.5 dB below image-v2.1 (benchmarks/README.md, "image-v4").
START_MARGIN = 1.25
#: A label is calibrated from each of up to this many trained points, the lowest that
#: reach it first, and keeps the one whose files it codes with the least distortion. The
#: nearest point is not always the best: on image-v2's train photos, 0.12bpp from its
#: point at 0.23 bpp had 5.8 % less than from its point at 0.15 bpp (and 0.06bpp from
#: the 0.15 point 1 % less than from the 0.066 one, 1.7 dB more on the evaluate photos).
MAX_STARTS = 2
#: A real rate within this fraction below the label ends the search.
TOLERANCE = 0.03
#: Rounds of the search; up to MAX_ROUNDS while no round has met the label yet (near a
#: model's lowest rate the real rate approaches the label slowly from above).
ROUNDS, MAX_ROUNDS = 4, 8


@dataclasses.dataclass(frozen=True)
class Measurement:
    """Means over signals coded at one operating point: real rate (header included) and
    the search's distortion (in model space)."""

    rate: float
    distortion: float


def measure(codec: Codec, signals: Sequence[Any], label: str | None) -> Measurement:
    """Code ``signals`` at operating point ``label`` once and measure them."""
    reports = [codec.encode(s, operating_point=label)[1] for s in signals]
    return Measurement(
        statistics.fmean(r.rate for r in reports), statistics.fmean(r.distortion for r in reports)
    )


def calibrate(
    codec: Codec,
    signals: Sequence[Any],
    measured_on: Sequence[Any],
    label: str,
    log: Callable[[str], None] = print,
    tuning: GeneratorTuning | None = None,
    starts: Sequence[OperatingPoint] = (),
) -> float:
    """Set ``label``'s weight and tables so that real files of ``measured_on`` meet it,
    starting from the trained point of ``starts`` (the default point if empty) that
    then codes them with the least distortion: its tables, generator and latent gain.

    ``signals`` (all the calibration data) shape the tables; real encodes of the subset
    ``measured_on`` correct the aim. Returns the mean real rate reached, at most the
    label's: the closest round below it is kept.

    With ``tuning``, the point then gets a generator fine-tuned at the weight found if,
    at that weight, it lowers the mean distortion of ``measured_on`` (their rate is at
    most that of the encoder output's projection either way: the generator does not
    change it). The aim is then corrected again through it, since the search moves
    indices differently through the tuned generator.
    """
    model = codec.model
    training, reached, aim = _aim_from_best(
        codec, signals, measured_on, label, starts or [model.point()], log
    )
    if tuning is None:
        return reached.rate
    point = model.point(label)
    log(f"{label}: tuning a generator at weight {point.rate_weight:.4g}")
    generator = tune_generator(codec, training.generator, point, tuning, log)
    model.set_point(dataclasses.replace(point, generator=generator))
    tuned = measure(codec, measured_on, label)
    log(
        f"{label}: distortion {reached.distortion:.5g} with the training generator,"
        f" {tuned.distortion:.5g} tuned ({tuned.rate:.4f} {codec.modality.rate_unit})"
    )
    if tuned.distortion >= reached.distortion:
        model.set_point(point)
        return reached.rate
    first = None if aim is None else (aim, tuned)
    return _aim(codec, signals, measured_on, label, training, log, first)[0].rate


def _aim_from_best(
    codec: Codec,
    signals: Sequence[Any],
    measured_on: Sequence[Any],
    label: str,
    starts: Sequence[OperatingPoint],
    log: Callable[[str], None],
) -> tuple[OperatingPoint, Measurement, float | None]:
    """Aim ``label`` from each of ``starts`` (see :func:`_aim`) and keep the try whose
    files have the least distortion; returns its start, what it measured and its aim."""
    model = codec.model
    tries = []
    for start in starts:
        reached, aim = _aim(codec, signals, measured_on, label, start, log)
        if len(starts) > 1:
            log(
                f"{label}: from trained point {start.label or 'default'}, distortion"
                f" {reached.distortion:.5g} ({reached.rate:.4f} {codec.modality.rate_unit})"
            )
        tries.append((reached.distortion, start, reached, aim, model.point(label)))
    _, start, reached, aim, point = min(tries, key=lambda item: item[0])
    model.set_point(point)
    return start, reached, aim


class _Try(NamedTuple):
    """One try of a point's weight and tables: the point, what it measured, the rate it
    aimed at."""

    point: OperatingPoint
    measured: Measurement
    aim: float


def _aim(
    codec: Codec,
    signals: Sequence[Any],
    measured_on: Sequence[Any],
    label: str,
    training: OperatingPoint,
    log: Callable[[str], None],
    first: tuple[float, Measurement] | None = None,
) -> tuple[Measurement, float | None]:
    """Search ``label``'s weight and tables from the ``training`` point's, at its
    latent gain (see :func:`calibrate`).

    ``first`` is a try already made with the point as it is: the rate it aimed at and
    what it measured. Without it, the search starts with no rate term, then aims at the
    label. Returns what the kept try measured and the rate it aimed at (None when no
    rate term was needed). The point keeps its generator throughout.
    """
    modality, model = codec.modality, codec.model
    target = parse_rate(label, modality.rate_unit)
    with torch.no_grad():
        latents = [
            training.latents(model.encoder(modality.analysis(s)[0].unsqueeze(0))) for s in signals
        ]
    centers = model.quantizer.centers.detach()
    generator = model.point(label).generator if first is not None else training.generator

    def try_weight(weight: float, tables: EntropyTables) -> tuple[OperatingPoint, Measurement]:
        contexts = fit_point_context_tables(latents, centers, tables, weight)
        point = OperatingPoint(
            label, weight, tables, CONTEXT, contexts, generator, training.latent_gain
        )
        model.set_point(point)
        return point, measure(codec, measured_on, label)

    tried: list[tuple[float, float]] = []  # (aimed rate, real rate)
    best: _Try | None = None
    if first is None:
        _, free = try_weight(0.0, training.search_tables)
        log(f"{label}: no rate term, training tables: {free.rate:.4f} {modality.rate_unit}")
        if free.rate <= target:
            return free, None
    else:
        aim, reached = first
        tried.append((aim, reached.rate))
        if reached.rate <= target:
            best = _Try(model.point(label), reached, aim)
            if (1 - TOLERANCE) * target <= reached.rate:
                return reached, aim
    # Rate units per bit of each signal, so that a rate aim becomes bits per element.
    bits_per_unit = sum(1.0 / modality.rate(1, s) for s in signals)
    elements = sum(z.numel() for z in latents)
    goal = (1 - TOLERANCE / 2) * target
    for round_ in range(MAX_ROUNDS):
        if round_ >= ROUNDS and best is not None:
            break
        aim = _next_aim(tried, goal)
        bits = aim * bits_per_unit / elements
        weight, tables = find_operating_point(latents, centers, training.search_tables, bits)
        point, reached = try_weight(weight, tables)
        log(f"{label}: weight {weight:.4g} ({bits:.3f} bits/element): {reached.rate:.4f}")
        tried.append((aim, reached.rate))
        if reached.rate <= target and (best is None or reached.rate > best.measured.rate):
            best = _Try(point, reached, aim)
        if (1 - TOLERANCE) * target <= reached.rate <= target:
            break
    if best is None:
        raise UsageError(f"{label}: no rate weight reached {target} {modality.rate_unit}")
    model.set_point(best.point)
    return best.measured, best.aim


def _trained_rates(
    codec: Codec, measured_on: Sequence[Any], log: Callable[[str], None]
) -> list[tuple[float, OperatingPoint]]:
    """The model's trained points and the mean rate of their files with no rate term
    (only measured when there are several to choose from)."""
    points = list(codec.model.points)
    if len(points) == 1:
        return [(0.0, points[0])]
    rates = []
    for point in points:
        rate = measure(codec, measured_on, point.label).rate
        log(f"trained point {point.label or 'default'}: {rate:.4f} {codec.modality.rate_unit}")
        rates.append((rate, point))
    return rates


def start_points(
    trained: Sequence[tuple[float, OperatingPoint]], target: float
) -> list[OperatingPoint]:
    """Of the ``trained`` (rate with no rate term, point) pairs, those to calibrate a
    label of rate ``target`` from: the MAX_STARTS lowest rates at least START_MARGIN times
    the target, or the highest rate if none is."""
    by_rate = sorted(trained, key=lambda item: item[0])
    reaching = [point for rate, point in by_rate if rate >= START_MARGIN * target]
    return reaching[:MAX_STARTS] or [by_rate[-1][1]]


def _next_aim(tried: Sequence[tuple[float, float]], goal: float) -> float:
    """The aimed rate expected to give a real rate of ``goal``.

    Real rates are not proportional to aimed ones (the header is a fixed cost, the
    search moves indices), so after two tries the secant through the last two is used,
    never more than halving the aim in one round (the real rate can bend sharply).
    """
    if not tried:
        return goal
    (aim, rate), previous = tried[-1], tried[-2] if len(tried) > 1 else None
    if previous is not None and previous[1] != rate:
        slope = (rate - previous[1]) / (aim - previous[0])
        if slope > 0:
            return max(aim + (goal - rate) / slope, 0.5 * aim)
    return aim * goal / rate


def calibrate_points(
    codec: Codec,
    signals: Sequence[Any],
    measured_on: Sequence[Any],
    default_label: str,
    log: Callable[[str], None] = print,
    tuning: GeneratorTuning | None = None,
) -> dict[str, float]:
    """Calibrate a point for every rate of the model's config; returns the real rate
    each reached.

    Every point is fitted from a trained point's tables (and tuned from its generator):
    of the MAX_STARTS whose files, coded with no rate term, are the smallest that still
    exceed the label by START_MARGIN (the largest if none does, as a rate term only
    lowers a rate), the one that codes the label with the least distortion.
    At the end the ``default_label`` point becomes the default, the trained points go,
    and the points that kept the training generator decode with the default point's, as
    a file at any point did before points had generators of their own.
    """
    model = codec.model
    training = model.point()
    trained = [point.label for point in model.points]
    trained_rates = _trained_rates(codec, measured_on, log)
    reached: dict[str, float] = {}
    unit = codec.modality.rate_unit
    for label in model.config.rates:
        starts = start_points(trained_rates, parse_rate(label, unit))
        reached[label] = calibrate(codec, signals, measured_on, label, log, tuning, starts)
    model.set_point(model.point(default_label), default=True)
    for trained_label in trained:
        if trained_label not in reached:
            model.drop_point(trained_label)
    default = model.point()
    for point in list(model.points):
        if point.generator is training.generator:
            model.set_point(dataclasses.replace(point, generator=default.generator))
    return reached

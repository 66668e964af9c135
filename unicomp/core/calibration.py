"""Calibrate a model's operating points so that real files meet their rate labels.

An operating point is a rate label such as "0.12bpp" or "2kbps" with its own rate-term
weight and entropy tables (core/rate_control.py). The weight is first solved on encoder
outputs of training signals, where it is cheap; the real rate of a file then differs
(the latent search moves indices, the header costs bits), so the aim is corrected by the
real rates of earlier tries and solved again, until a real rate lands just below the
label. Calibration data must be training data, never evaluation data.

With a :class:`GeneratorTuning`, each point also gets its own generator, fine-tuned on
the indices the point transmits (core/point_tuning.py).
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable, Sequence
from typing import Any

import torch

from unicomp.core.codec import Codec
from unicomp.core.entropy import EntropyTables
from unicomp.core.point_tuning import GeneratorTuning, tune_generator
from unicomp.core.rate_control import find_operating_point
from unicomp.errors import UsageError

#: A real rate within this fraction below the label ends the search.
TOLERANCE = 0.03
ROUNDS = 4


def label_rate(label: str, unit: str) -> float:
    """The number in a rate label: ``label_rate("0.12bpp", "bpp") == 0.12``."""
    try:
        return float(label.removesuffix(unit))
    except ValueError:
        raise UsageError(f"operating point {label!r} is not a rate in {unit}") from None


def set_point(
    codec: Codec, label: str, weight: float, tables: EntropyTables, default: bool
) -> None:
    """Give operating point ``label`` a rate weight and entropy tables.

    The default point's weight and tables become the search's and the coder's own, so a
    file coded without naming a point is coded exactly at the default point.
    """
    config = codec.model.config
    codec.model.config = dataclasses.replace(
        config,
        operating_points={**config.operating_points, label: weight},
        admm=dataclasses.replace(config.admm, rate_weight=weight) if default else config.admm,
    )
    if default:
        codec.model.tables = tables
    else:
        codec.model.point_tables[label] = tables


def mean_rate(codec: Codec, signals: Sequence[Any], label: str) -> float:
    """Mean real rate (header included) of ``signals`` coded at operating point ``label``."""
    return statistics.fmean(codec.encode(s, operating_point=label)[1].rate for s in signals)


def mean_distortion(codec: Codec, signals: Sequence[Any], label: str) -> float:
    """Mean distortion (the search's, in model space) of ``signals`` coded at ``label``."""
    return statistics.fmean(codec.encode(s, operating_point=label)[1].distortion for s in signals)


def calibrate(
    codec: Codec,
    signals: Sequence[Any],
    measured_on: Sequence[Any],
    label: str,
    log: Callable[[str], None] = print,
    tuning: GeneratorTuning | None = None,
) -> float:
    """Set ``label``'s weight and tables so that real files of ``measured_on`` meet it.

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
    training_tables = model.tables
    rate, aim = _aim(codec, signals, measured_on, label, training_tables, log)
    if tuning is None:
        return rate
    weight = model.config.operating_points[label]
    before = mean_distortion(codec, measured_on, label)
    log(f"{label}: tuning a generator at weight {weight:.4g}")
    tables = model.point_tables[label]
    model.point_generators[label] = tune_generator(codec, weight, tables, tuning, log)
    after = mean_distortion(codec, measured_on, label)
    log(f"{label}: distortion {before:.5g} with the training generator, {after:.5g} tuned")
    if after >= before:
        del model.point_generators[label]
        return rate
    return _aim(codec, signals, measured_on, label, training_tables, log, aim)[0]


def _aim(
    codec: Codec,
    signals: Sequence[Any],
    measured_on: Sequence[Any],
    label: str,
    training_tables: EntropyTables,
    log: Callable[[str], None],
    first_aim: float | None = None,
) -> tuple[float, float | None]:
    """Search ``label``'s weight and tables from the training tables (see
    :func:`calibrate`), aiming first at ``first_aim`` if given, else at the label.

    Returns the real rate reached and the aimed rate that reached it (None when no rate
    term was needed).
    """
    modality, model = codec.modality, codec.model
    target = label_rate(label, modality.rate_unit)
    set_point(codec, label, 0.0, training_tables, False)
    rate = mean_rate(codec, measured_on, label)
    log(f"{label}: no rate term, training tables: {rate:.4f} {modality.rate_unit}")
    if rate <= target:
        return rate, None
    with torch.no_grad():
        latents = [model.encoder(modality.analysis(s)[0].unsqueeze(0)) for s in signals]
    # Rate units per bit of each signal, so that a rate aim becomes bits per element.
    bits_per_unit = sum(1.0 / modality.rate(1, s) for s in signals)
    elements = sum(z.numel() for z in latents)
    centers = model.quantizer.centers.detach()
    goal = (1 - TOLERANCE / 2) * target
    tried: list[tuple[float, float]] = []  # (aimed rate, real rate)
    best = None
    for _ in range(ROUNDS):
        aim = _next_aim(tried, goal) if tried or first_aim is None else first_aim
        bits = aim * bits_per_unit / elements
        weight, tables = find_operating_point(latents, centers, training_tables, bits)
        set_point(codec, label, weight, tables, False)
        rate = mean_rate(codec, measured_on, label)
        log(f"{label}: weight {weight:.4g} ({bits:.3f} bits/element): {rate:.4f}")
        tried.append((aim, rate))
        if rate <= target and (best is None or rate > best[2]):
            best = (weight, tables, rate, aim)
        if (1 - TOLERANCE) * target <= rate <= target:
            break
    if best is None:
        raise UsageError(f"{label}: no rate weight reached {target} {modality.rate_unit}")
    set_point(codec, label, best[0], best[1], False)
    return best[2], best[3]


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
    """Calibrate every operating point of the model; returns the real rate each reached.

    Every point is fitted from the training tables (and tuned from the training
    generator); at the end the default point's tables and generator replace them, since
    a file coded without naming a point is coded at it.
    """
    model = codec.model
    reached = {
        label: calibrate(codec, signals, measured_on, label, log, tuning)
        for label in model.config.operating_points
    }
    weight = model.config.operating_points[default_label]
    set_point(codec, default_label, weight, model.point_tables.pop(default_label), True)
    if default_label in model.point_generators:
        model.generator = model.point_generators.pop(default_label)
    return reached

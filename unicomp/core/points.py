"""Operating points: the rates one model serves, each described by one object.

A point is a rate label (``--rate 0.12bpp``) with everything that codes files at it:
the weight of the rate term in the latent search and the per-channel tables that price
symbols there (core/rate_control.py), the coder its files are written with and that
coder's tables (core/coders.py), and the generator that decodes them (the model's, or
one fine-tuned on the point's indices, core/point_tuning.py). A model's first point is
its default: a file that names no point was coded at it. A model fresh from training
has one point, labelled None, with no rate term.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from unicomp.core.coders import Coder
from unicomp.core.entropy import EntropyTables
from unicomp.errors import UsageError


@dataclass
class OperatingPoint:
    """One rate a model serves (see the module docstring)."""

    label: str | None
    rate_weight: float
    search_tables: EntropyTables
    coder: Coder
    coder_tables: EntropyTables
    generator: nn.Module


def parse_rate(text: str, unit: str) -> float:
    """The rate ``text`` names, in ``unit``: ``parse_rate("0.12bpp", "bpp") == 0.12``; a
    bare number is read in ``unit`` too. Anything else, or a rate that is not a positive
    finite number, raises UsageError."""
    try:
        value = float(text.strip().removesuffix(unit))
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"{text!r} is not a rate in {unit} (such as 0.5{unit})")
    return value


def rate_range(points: Sequence[OperatingPoint], unit: str) -> tuple[float, float] | None:
    """The lowest and highest rate the labelled ``points`` serve (None if none has a
    label: a model fresh from training codes at one uncalibrated point)."""
    rates = [parse_rate(p.label, unit) for p in points if p.label is not None]
    return (min(rates), max(rates)) if rates else None

"""Operating points: the rates one model serves, each described by one object.

A point is a rate label (``--rate 0.12bpp``) with everything that codes files at it:
the weight of the rate term in the latent search and the per-channel tables that price
symbols there (core/rate_control.py), the coder its files are written with and that
coder's tables (core/coders.py), and the generator that decodes them (the model's, or
one fine-tuned on the point's indices, core/point_tuning.py). A model's first point is
its default: a file that names no point was coded at it. A model fresh from training
has one point, labelled None, with no rate term, or with rate-aware training at several
weights one point per weight (the others labelled ``trained-<n>``), each with its
per-channel gains (core/gains.py); calibration labels points with rates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from unicomp.core.coders import Coder
from unicomp.core.entropy import EntropyTables
from unicomp.core.gains import scale_channels
from unicomp.errors import UsageError

#: Labels of the points a rate-aware training made beyond its default, before any
#: calibration: ``trained-1``, ``trained-2``, ...
TRAINED_PREFIX = "trained-"


@dataclass
class OperatingPoint:
    """One rate a model serves (see the module docstring)."""

    label: str | None
    rate_weight: float
    search_tables: EntropyTables
    coder: Coder
    coder_tables: EntropyTables
    generator: nn.Module
    #: Per-channel gain applied to the encoder's output at this point (None: none).
    latent_gain: torch.Tensor | None = None

    def latents(self, encoded: torch.Tensor) -> torch.Tensor:
        """The encoder's output (batch, channels, *axes) as this point quantizes it."""
        if self.latent_gain is None:
            return encoded
        return scale_channels(encoded, self.latent_gain.to(encoded.device))


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


def rated_labels(points: Sequence[OperatingPoint], unit: str) -> list[str]:
    """The labels of the calibrated ``points`` (those labelled with a rate), from the
    lowest rate to the highest."""
    labels = [
        p.label for p in points if p.label is not None and not p.label.startswith(TRAINED_PREFIX)
    ]
    return sorted(labels, key=lambda label: parse_rate(label, unit))


def rate_range(points: Sequence[OperatingPoint], unit: str) -> tuple[float, float] | None:
    """The lowest and highest rate the calibrated ``points`` serve (None if there is
    none: a model fresh from training codes at uncalibrated points)."""
    labels = rated_labels(points, unit)
    if not labels:
        return None
    return parse_rate(labels[0], unit), parse_rate(labels[-1], unit)

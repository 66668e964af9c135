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

from dataclasses import dataclass

from torch import nn

from unicomp.core.coders import Coder
from unicomp.core.entropy import EntropyTables


@dataclass
class OperatingPoint:
    """One rate a model serves (see the module docstring)."""

    label: str | None
    rate_weight: float
    search_tables: EntropyTables
    coder: Coder
    coder_tables: EntropyTables
    generator: nn.Module

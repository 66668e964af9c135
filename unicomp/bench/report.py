"""What one bench run found: the curves, the comparisons and what could not run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from unicomp.bench.at_rates import AtRate
from unicomp.bench.records import Record
from unicomp.bench.summary import BdResult, Curve


@dataclass
class BenchReport:
    """Everything ``unicomp bench`` prints and writes."""

    modality: str
    rate_unit: str
    metrics: list[str]
    items: list[str]
    records: list[Record]
    curves: list[Curve]
    #: Codec name -> why it was skipped (missing tool, checkpoint or model).
    unavailable: dict[str, str]
    anchor: str | None
    bd: list[BdResult]
    #: Every codec's quality at each of the anchor's rates (see bench/at_rates.py).
    at_anchor_rates: list[AtRate] = field(default_factory=list)
    #: The unit speeds are quoted per (the modality's optional ``size_unit``), or None.
    size_unit: str | None = None
    #: Measurements made now, and those taken over from an earlier run (``--resume``).
    measured: int = 0
    resumed: int = 0
    interrupted: bool = False
    outputs: list[Path] = field(default_factory=list)

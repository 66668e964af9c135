"""What one bench run found: the curves, the comparisons and what could not run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from unicomp.bench.at_rates import AtRate
from unicomp.bench.records import Record
from unicomp.bench.summary import BdResult, Curve


@dataclass(frozen=True)
class GroupReport:
    """One group of items (speech: wideband or narrowband clips) summarised on its own
    records: a mean over items that behave apart hides how each kind fares."""

    name: str
    items: list[str]
    curves: list[Curve]
    #: Against the run's anchor, on this group's curves (empty when it has no points here).
    bd: list[BdResult]
    at_anchor_rates: list[AtRate]


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
    #: The same summary per group of items, by name, when the items fall into two or more.
    groups: list[GroupReport] = field(default_factory=list)
    #: The unit speeds are quoted per (the modality's optional ``size_unit``), or None.
    size_unit: str | None = None
    #: Measurements made now, and those taken over from an earlier run (``--resume``).
    measured: int = 0
    resumed: int = 0
    interrupted: bool = False
    outputs: list[Path] = field(default_factory=list)

"""One measurement per (codec, item, quality), kept in an append-only JSON-lines file.

Every record is written and flushed the moment it is measured, so Ctrl-C or a crash
loses at most the measurement under way, and ``--resume`` skips what is on disk. A
record remembers the codec's description: after a model or tool changes, its old
records no longer match and are measured again.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unicomp.bench.base import Quality
from unicomp.errors import UsageError


@dataclass(frozen=True)
class Record:
    """One codec at one quality setting on one item: rate, quality, time and memory."""

    codec: str
    description: str
    item: str
    quality: Quality
    bits: int | None = None
    rate: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    encode_seconds: float | None = None
    decode_seconds: float | None = None
    encode_peak_bytes: int | None = None
    decode_peak_bytes: int | None = None
    error: str | None = None
    #: How much signal the item holds, in the modality's optional ``size_unit``.
    size: float | None = None
    #: The item's group (the modality's optional ``bench_group``); None without one, and
    #: in records written before groups were stored.
    group: str | None = None

    @property
    def key(self) -> tuple[str, ...]:
        return record_key(self.codec, self.description, self.item, self.quality)


def record_key(codec: str, description: str, item: str, quality: Quality) -> tuple[str, ...]:
    """What identifies a measurement for ``--resume``."""
    return (codec, description, item, str(quality))


class RecordStore:
    """The records file of one bench output folder."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def open(cls, path: Path, resume: bool, overwrite: bool) -> RecordStore:
        """The store at ``path``; earlier records are kept only with ``resume``."""
        if path.exists() and not path.is_file():
            raise UsageError(f"{path} exists and is not a file")
        if path.exists() and path.stat().st_size and not (resume or overwrite):
            raise UsageError(
                f"{path} holds results of an earlier run; pass --resume to continue it "
                "or --force to start over"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        if overwrite and not resume:
            path.write_text("", encoding="utf-8")
        return cls(path)

    def load(self) -> list[Record]:
        """Every complete record on disk (a line cut short by a crash is dropped)."""
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        records = []
        for number, line in enumerate(lines, start=1):
            try:
                records.append(Record(**_from_json(json.loads(line))))
            except (json.JSONDecodeError, TypeError) as error:
                if number == len(lines):  # the write that Ctrl-C or a crash interrupted
                    break
                raise UsageError(
                    f"{self.path} line {number} is not a bench record: {error}"
                ) from None
        return records

    def append(self, record: Record) -> None:
        """Write one record and flush it to disk at once."""
        with self.path.open("a", encoding="utf-8") as stream:
            stream.write(json.dumps(json_safe(dataclasses.asdict(record))) + "\n")
            stream.flush()


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as None: strict JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def _from_json(data: dict[str, Any]) -> dict[str, Any]:
    metrics = data.get("metrics") or {}
    return {**data, "metrics": {k: math.nan if v is None else v for k, v in metrics.items()}}

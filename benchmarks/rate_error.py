"""Per-file rate error of unicomp's curves in a ``unicomp bench`` run.

    .venv/bin/python benchmarks/rate_error.py ~/.cache/unicomp/bench/image

For every unicomp codec (one per encoder effort) and every rate of its sweep, the files'
real rates (header included) against the rate asked, in %: the highest (the promise:
at most 0) and the lowest (at least -3, unless even weight 0 could not fill the file).
Reads ``<modality>-records.jsonl`` of the run's folder.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

from unicomp.bench.model_codec import VARIANTS
from unicomp.bench.records import Record, RecordStore


def asked_rate(quality: str) -> float | None:
    """The number in a sweep's rate string ("0.106bpp" → 0.106); None for others."""
    digits = quality.rstrip("abcdefghijklmnopqrstuvwxyz/")
    try:
        return float(digits)
    except ValueError:
        return None


def rows(records: list[Record]) -> list[tuple[str, str, int, float, float, float]]:
    """(codec, rate asked, files, highest, lowest and mean % against the rate asked)."""
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for record in records:
        asked = asked_rate(str(record.quality))
        if record.codec in VARIANTS and asked and record.rate is not None:
            groups[(record.codec, str(record.quality))].append(100 * (record.rate / asked - 1))
    return [
        (codec, quality, len(errors), max(errors), min(errors), sum(errors) / len(errors))
        for (codec, quality), errors in sorted(
            groups.items(), key=lambda g: (g[0][0], asked_rate(g[0][1]))
        )
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="the bench --out folder")
    args = parser.parse_args(argv)
    stores = sorted(args.run.glob("*-records.jsonl"))
    if len(stores) != 1:
        raise SystemExit(f"expected one records file in {args.run}, found {len(stores)}")
    print("| codec | asked | files | highest | lowest | mean |")
    print("|---|---|---|---|---|---|")
    for codec, quality, files, highest, lowest, mean in rows(RecordStore(stores[0]).load()):
        errors = " | ".join(f"{value:+.2f} %" for value in (highest, lowest, mean))
        print(f"| {codec} | {quality} | {files} | {errors} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""BD-rate between two ``unicomp bench`` runs of one codec: two commits, models or settings.

    .venv/bin/python benchmarks/compare_runs.py --modality speech --codec unicomp \\
        BEFORE_OUT AFTER_OUT

``unicomp bench`` compares codecs within one run; this compares a codec across runs, from
each run's per-item table (``<out>/<modality>-items.csv``), over the items both runs
coded, each run at its own settings. For every metric it prints the BD-rate of AFTER against BEFORE
(negative: AFTER needs that much less rate for the same quality), over all items and per
group (the modality's ``bench_group``, e.g. speech's wideband and narrowband clips).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from unicomp.bench.bd import bd_rate
from unicomp.errors import InputError

#: Columns of the items table that are not quality metrics.
NOT_METRICS = {
    "codec", "item", "group", "quality", "bits", "size_s", "size_mpx", "encode_s", "decode_s",
    "encode_peak_mb", "decode_peak_mb", "error",
}  # fmt: skip

#: {item: {setting: {column: value}}}
Run = dict[str, dict[str, dict[str, float]]]


def read_run(path: Path, codec: str, rate: str) -> tuple[Run, dict[str, str]]:
    """``codec``'s coded items in an items table, and each item's group."""
    run: Run = defaultdict(dict)
    groups: dict[str, str] = {}
    with path.open(encoding="utf-8", newline="") as table:
        for row in csv.DictReader(table):
            if row["codec"] == codec and not row.get("error") and row[rate]:
                values = {k: float(v) for k, v in row.items() if k.lower() not in NOT_METRICS and v}
                run[row["item"]][row["quality"]] = values
                groups[row["item"]] = row.get("group", "")
    return run, groups


def means(run: Run, items: list[str], settings: list[str], column: str) -> list[float]:
    """The mean of ``column`` over ``items`` at each of ``settings``."""
    return [statistics.fmean(run[item][setting][column] for item in items) for setting in settings]


def group_bd(before: Run, after: Run, items: list[str], rate: str, metric: str) -> float:
    """BD-rate of ``after`` against ``before`` in ``metric``: each run's curve over the
    settings it coded every one of ``items`` at (two models may sweep different rates),
    and the items that have the metric there (flat-region PSNR is missing for photos
    without a flat block)."""
    runs = (before, after)
    own = [set.intersection(*(set(run[i]) for i in items)) for run in runs]
    coded = list(zip(runs, own, strict=True))
    items = [i for i in items if all(metric in run[i][s] for run, at in coded for s in at)]
    curves = []
    for run, settings in coded:
        ordered = sorted(settings, key=lambda s: statistics.fmean(run[i][s][rate] for i in items))
        curves += [means(run, items, ordered, rate), means(run, items, ordered, metric)]
    return bd_rate(*curves)


def _cell(before: Run, after: Run, items: list[str], rate: str, metric: str) -> str:
    """One metric's BD-rate, or why there is none: curves apart in quality have no
    common range to integrate over (the anchor is ``before``, the test ``after``)."""
    try:
        return f"{metric} {group_bd(before, after, items, rate, metric):+.1f} %"
    except InputError as error:
        return f"{metric} n/a ({error})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modality", required=True)
    parser.add_argument("--codec", default="unicomp")
    parser.add_argument("--rate", help="rate column (default: bpp for images, else kbps)")
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    rate = args.rate or ("bpp" if args.modality == "image" else "kbps")
    table = f"{args.modality}-items.csv"
    for run in (args.before, args.after):
        if not (run / table).is_file():
            print(f"{run} holds no {table}: not a finished bench run", file=sys.stderr)
            return 2
    before, groups = read_run(args.before / table, args.codec, rate)
    after, _ = read_run(args.after / table, args.codec, rate)
    items = sorted(set(before) & set(after))
    if not items:
        print("the two runs coded no item in common", file=sys.stderr)
        return 2
    by_group: dict[str, list[str]] = {"all": items}
    for item in items:
        if groups[item]:
            by_group.setdefault(groups[item], []).append(item)
    metrics = [k for k in next(iter(before[items[0]].values())) if k != rate]
    for group, members in by_group.items():
        cells = [_cell(before, after, members, rate, m) for m in metrics]
        print(f"{group} ({len(members)} items): " + ", ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Two training runs side by side, step for step: windowed means of their logged losses.

    .venv/bin/python benchmarks/compare_logs.py ~/.cache/unicomp/runs/image-v2 \
        ~/.cache/unicomp/runs/image-deep --keys reconstruction bits --window 1000

An ablation that changes one thing of a recipe (a network's size, a loss weight) trains
on the same batches as the run it is compared with, since a step's batch is a function
of the seed and the step (core/data.py). Their logs (``log.jsonl`` in each run folder,
one line per ``log_every`` steps, each over one batch; a resumed run logs again the
steps after its last checkpoint, and the later line counts) can then be compared at
equal steps, long before either run ends: this prints the mean of each key over windows of
``--window`` steps that both runs have logged, and the second run's change against the
first in percent.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from unicomp.core.trainer import LOG_NAME


def windowed_means(run: Path, keys: list[str], window: int) -> dict[int, dict[str, float]]:
    """Mean of each key per window of steps (keyed by the window's first step)."""
    with (run / LOG_NAME).open(encoding="utf-8") as lines:
        # A rollback's own line carries no losses; the steps it replays overwrite the
        # wrecked ones, as they come later in the log.
        entries = (entry for entry in map(json.loads, lines) if "event" not in entry)
        by_step = {int(entry["step"]): entry for entry in entries}
    values: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for step, entry in by_step.items():
        start = (step - 1) // window * window
        for key in keys:
            if isinstance(entry.get(key), (int, float)):
                values[start][key].append(float(entry[key]))
    return {
        start: {key: statistics.fmean(found) for key, found in by_key.items()}
        for start, by_key in values.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("first", type=Path, help="run folder (the reference)")
    parser.add_argument("second", type=Path, help="run folder (the ablation)")
    parser.add_argument("--keys", nargs="+", default=["reconstruction", "bits"])
    parser.add_argument("--window", type=int, default=1000, help="steps per window")
    args = parser.parse_args(argv)
    if args.window < 1:
        parser.error("--window must be at least 1")
    try:
        first, second = (
            windowed_means(run, args.keys, args.window) for run in (args.first, args.second)
        )
    except (OSError, ValueError, KeyError) as error:
        print(f"error: cannot read a run's log.jsonl: {error}", file=sys.stderr)
        return 2
    print(f"{'steps':>13} " + " ".join(f"{key:>32}" for key in args.keys))
    for start in sorted(set(first) & set(second)):
        cells = []
        for key in args.keys:
            a, b = first[start].get(key), second[start].get(key)
            if a is None or b is None:
                cells.append(f"{'-':>32}")
            else:
                change = f"{100 * (b / a - 1):+.1f} %" if a else "n/a"
                cells.append(f"{a:>10.5g} {b:>10.5g} {change:>10}")
        print(f"{start + 1:>6}-{start + args.window:<6} " + " ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())

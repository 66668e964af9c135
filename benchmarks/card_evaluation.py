"""Record a bench run's results for a bundled model in its model card.

    .venv/bin/python benchmarks/card_evaluation.py ~/.cache/unicomp/bench/image \\
        --command "unicomp bench --modality image --data .../image/evaluate --out ..."

Reads ``<modality>-summary.json`` of a ``unicomp bench`` run and writes, under the card's
``evaluation`` key, the mean rate and metrics of the "unicomp" and "unicomp-fast"
curves at every rate of the sweep, with the command that produced them. Only
the card's JSON changes: the weights and their sha256 (in every .ucz header) do not.
The run must have used this very model (its sha256 is checked).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from unicomp.atomic import write_bytes_atomic
from unicomp.core.checkpoint import read_card

WEIGHTS = Path(__file__).resolve().parents[1] / "unicomp" / "weights"
CURVES = ("unicomp", "unicomp-fast")
#: Per-point keys of a curve that are not quality or rate (times are in the bench files).
SKIPPED = {"quality", "items", "encoding_peak_mb", "decoding_peak_mb"}


def evaluation(summary: dict, command: str) -> dict:
    """The card's ``evaluation`` entry: every point of the unicomp curves of a bench run."""
    curves = {}
    for codec in summary["codecs"]:
        if codec["name"] not in CURVES:
            continue
        results = codec["results"]
        curves[codec["name"]] = {
            label: {
                key: round(values[index], 4)
                for key, values in results.items()
                if key not in SKIPPED and values[index] is not None
            }
            for index, label in enumerate(results["quality"])
        }
    return {"command": command, "items": summary["items"], **curves}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="the bench --out folder")
    parser.add_argument("--command", required=True, help="the bench command that was run")
    args = parser.parse_args(argv)

    summaries = sorted(args.run.glob("*-summary.json"))
    if len(summaries) != 1:
        raise SystemExit(f"expected one summary in {args.run}, found {len(summaries)}")
    summary = json.loads(summaries[0].read_text(encoding="utf-8"))
    unicomp = next(c for c in summary["codecs"] if c["name"] == "unicomp")
    for card_path in WEIGHTS.glob("*.json"):
        card = read_card(card_path)
        if card["weights"]["sha256"][:12] not in unicomp["description"]:
            continue
        card["evaluation"] = evaluation(summary, args.command)
        write_bytes_atomic(card_path, (json.dumps(card, indent=1) + "\n").encode(), True)
        print(f"recorded the run in {card_path}")
        return 0
    raise SystemExit(f"no bundled {summary['modality']} model matches {unicomp['description']}")


if __name__ == "__main__":
    sys.exit(main())

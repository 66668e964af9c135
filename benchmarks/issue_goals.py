"""Check a ``unicomp bench`` run against the goals of the image and speech issues.

    .venv/bin/python benchmarks/issue_goals.py ~/.cache/unicomp/bench/image
    .venv/bin/python benchmarks/issue_goals.py ~/.cache/unicomp/bench/speech

One line per goal, ``met`` or ``MISSED`` with the numbers behind it; the exit status is
the number of goals missed (0: all met). The run must use the default anchor
(``unicomp``). Goals as the issues state them:

- images (issue 17), at each point of the unicomp curve: MS-SSIM above WebP and JPEG
  2000 at the same rate, PSNR within 2 dB of JPEG 2000, chroma PSNR within 1 dB of WebP
  (a codec whose sweep cannot go down to that rate counts as beaten there); BD-rate in
  MS-SSIM against JPEG 2000 at most -10 %; ahead of each trained CompressAI baseline in
  BD-rate on PSNR and MS-SSIM.
- speech (issue 18), on the wideband clips: at the highest point of at most 2.0 kbit/s,
  PESQ-WB and STOI at or above Opus at its 8 kbit/s setting; at the highest point of at
  most 1.0 kbit/s, above Codec2 3200.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LEARNED_BASELINES = ("bmshj2018-factorized", "bmshj2018-hyperprior", "mbt2018-mean")
#: (highest unicomp rate in kbit/s, codec, its setting, whether unicomp must be strictly
#: better) of the speech goals.
SPEECH_GOALS = ((2.0, "opus", "8", False), (1.0, "codec2", "3200", True))


def image_goals(run: Path) -> Iterator[tuple[bool, str]]:
    """(met, description) of every image goal."""
    summary = _summary(run, "image")
    rows = list(csv.DictReader((run / "image-at-anchor-rates.csv").open(encoding="utf-8")))
    for point in dict.fromkeys(row["anchor_quality"] for row in rows):
        at = {row["codec"]: row for row in rows if row["anchor_quality"] == point}
        ours = at["unicomp"]
        for codec, metric, margin in (
            ("webp", "ms_ssim", 0.0),
            ("jpeg2000", "ms_ssim", 0.0),
            ("jpeg2000", "psnr", -2.0),
            ("webp", "chroma_psnr", -1.0),
        ):
            if codec not in at:
                yield False, f"{point}: {codec} was not measured"
                continue
            yield _compare(point, metric, float(ours[metric]), at[codec], codec, margin)
    bd = {(r["codec"], r["metric"]): r for r in summary["bd"]}
    row = bd.get(("jpeg2000", "ms_ssim"))
    change = _inverse(row)
    yield (
        change is not None and change <= -10.0,
        f"BD-rate (MS-SSIM) against JPEG 2000: {_percent(row, change)} (goal <= -10 %)",
    )
    for baseline in LEARNED_BASELINES:
        for metric in ("psnr", "ms_ssim"):
            row = bd.get((baseline, metric))
            change = _inverse(row)
            yield (
                change is not None and change < 0,
                f"BD-rate ({metric}) against {baseline}: {_percent(row, change)} (goal < 0)",
            )


def speech_goals(run: Path) -> Iterator[tuple[bool, str]]:
    """(met, description) of every speech goal."""
    _summary(run, "speech")
    ours = _wideband(run, "unicomp")
    rates = [_kbps(label) for label in ours["quality"]]
    for limit, codec, setting, strictly in SPEECH_GOALS:
        within = [(rate, i) for i, rate in enumerate(rates) if rate is not None and rate <= limit]
        if not within:
            yield False, f"no unicomp point at or under {limit} kbit/s"
            continue
        index = max(within)[1]
        theirs = _wideband(run, codec)
        if setting not in [str(q) for q in theirs["quality"]]:
            yield False, f"{codec} {setting} was not measured"
            continue
        other = [str(q) for q in theirs["quality"]].index(setting)
        for metric in ("pesq_wb", "stoi"):
            mine, their = ours[metric][index], theirs[metric][other]
            met = mine > their if strictly else mine >= their
            yield (
                met,
                f"{ours['quality'][index]} ({ours['kbps'][index]:.2f} kbit/s) {metric} {mine:.3f}"
                f" {'>' if strictly else '>='} {codec} {setting} ({theirs['kbps'][other]:.2f}"
                f" kbit/s) {their:.3f}",
            )


def _summary(run: Path, modality: str) -> dict[str, Any]:
    summary = json.loads((run / f"{modality}-summary.json").read_text(encoding="utf-8"))
    if summary["anchor"] != "unicomp":
        raise SystemExit(f"the run's anchor is {summary['anchor']}, not unicomp")
    return summary


def _compare(
    point: str, metric: str, ours: float, row: dict[str, str], codec: str, margin: float
) -> tuple[bool, str]:
    """Whether unicomp's ``ours`` beats ``codec``'s value at the same rate by ``margin``
    (negative: may trail by that much)."""
    goal = f"{metric} {'above' if margin == 0 else f'within {-margin:g} of'} {codec}"
    if row["outside"] == "below":
        return True, f"{point}: {goal}: {codec} cannot reach this rate (lowest {row['limit_bpp']})"
    if row["outside"] == "above":
        return False, f"{point}: {goal}: {codec}'s sweep ends below this rate"
    theirs = float(row[metric])
    met = ours > theirs if margin == 0 else ours >= theirs + margin
    return met, f"{point}: {goal}: {ours:.4g} against {theirs:.4g}"


def _inverse(row: dict[str, Any] | None) -> float | None:
    """unicomp's BD-rate against a codec, from the bench's row of that codec's BD-rate
    against unicomp (the mean log-rate ratio changes sign); None where it has none."""
    if row is None or row["rate_change"] is None:
        return None
    return 100.0 * (1.0 / (1.0 + row["rate_change"] / 100.0) - 1.0)


def _percent(row: dict[str, Any] | None, change: float | None) -> str:
    """unicomp's BD-rate ``change`` with the caveat of its bench ``row``, or why there is
    none."""
    if row is None:
        return "not measured"
    if change is None:
        return str(row["note"])
    return f"{change:+.1f} %" + (f" ({row['note']})" if row["note"] else "")


def _wideband(run: Path, codec: str) -> dict[str, Any]:
    curve = json.loads((run / f"speech-{codec}.json").read_text(encoding="utf-8"))
    return curve.get("groups", {}).get("wideband", {}).get("results") or curve["results"]


def _kbps(label: Any) -> float | None:
    match = re.fullmatch(r"([0-9.]+)kbps", str(label))
    return float(match.group(1)) if match else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="the bench --out folder")
    args = parser.parse_args(argv)
    if (args.run / "image-summary.json").exists():
        goals = list(image_goals(args.run))
    elif (args.run / "speech-summary.json").exists():
        goals = list(speech_goals(args.run))
    else:
        raise SystemExit(f"no image or speech bench summary in {args.run}")
    for met, text in goals:
        print(f"{'met   ' if met else 'MISSED'}  {text}")
    missed = sum(not met for met, _ in goals)
    print(f"{len(goals) - missed} of {len(goals)} goals met")
    return min(missed, 125)


if __name__ == "__main__":
    sys.exit(main())

"""The bench's tables as headers and rows of text, rendered by rich (CLI) or Markdown."""

from __future__ import annotations

import math
from collections.abc import Sequence

from unicomp.bench.at_rates import BELOW, AtRate
from unicomp.bench.summary import BdResult, Curve

Table = tuple[list[str], list[list[str]]]

MB = 1024 * 1024


def results_table(
    curves: Sequence[Curve], rate_unit: str, metrics: Sequence[str], size_unit: str | None = None
) -> Table:
    """One row per codec and setting: mean rate, quality, speed and peak memory.

    With a ``size_unit`` the speed is also per unit of signal: encode seconds per unit
    and decoded units per second (for speech: encode s per s of audio and the decoder's
    real-time factor).
    """
    per_unit = [f"enc s/{size_unit}", f"dec {size_unit}/s"] if size_unit else []
    headers = [
        "codec",
        "setting",
        "items",
        rate_unit,
        *metrics,
        "enc/dec ms",
        *per_unit,
        "enc/dec MB",
    ]
    rows = []
    for curve in curves:
        for point in curve.points:
            speeds = (point.encode_seconds_per_unit, point.decode_units_per_second)
            rows.append(
                [
                    curve.codec,
                    str(point.quality),
                    str(point.items),
                    number(point.rate),
                    *(number(point.metrics.get(m, math.nan)) for m in metrics),
                    f"{number(1000 * point.encode_seconds, 1)}/"
                    f"{number(1000 * point.decode_seconds, 1)}",
                    *(number(speed) for speed in speeds if size_unit),
                    f"{_megabytes(point.encode_peak_bytes)}/{_megabytes(point.decode_peak_bytes)}",
                ]
            )
    return headers, rows


def at_rates_table(
    results: Sequence[AtRate], anchor: str, rate_unit: str, metrics: Sequence[str]
) -> Table:
    """Per point of ``anchor``: its own values, then each codec's at the same rate.

    Outside a codec's measured rates the cells say "below"/"above" and the note gives
    the codec's lowest or highest rate: nothing is extrapolated.
    """
    headers = [f"{anchor} setting", rate_unit, "codec", *metrics, "note"]
    rows = []
    for result in results:
        if result.outside is None:
            cells = [number(result.metrics.get(m, math.nan)) for m in metrics]
            note = "measured" if result.codec == anchor else "interpolated"
        else:
            cells = [result.outside] * len(metrics)
            which = "lowest" if result.outside == BELOW else "highest"
            note = f"{result.outside} its {which} rate, {number(result.limit)} {rate_unit}"
        rows.append([str(result.setting), number(result.rate), result.codec, *cells, note])
    return headers, rows


def bd_table(results: Sequence[BdResult], anchor: str) -> Table:
    """BD-rate and BD-quality of each codec against ``anchor``, one row per metric."""
    headers = ["codec", "metric", f"BD-rate vs {anchor} (%)", f"BD-quality vs {anchor}", "note"]
    rows = [
        [
            r.codec,
            r.metric,
            _signed(r.rate_change, 1),
            _signed(r.quality_change, 3),
            r.note or "",
        ]
        for r in results
    ]
    return headers, rows


def markdown(table: Table) -> str:
    """A GitHub Markdown table."""
    headers, rows = table
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def number(value: float | None, decimals: int | None = None) -> str:
    """A value for a table: four significant digits, or fixed decimals; "-" if unknown."""
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.{decimals}f}" if decimals is not None else f"{value:.4g}"


def _signed(value: float | None, decimals: int) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.{decimals}f}"


def _megabytes(value: int | None) -> str:
    return "-" if value is None else f"{value / MB:.1f}"

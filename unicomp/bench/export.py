"""The files a bench run leaves behind, all named ``<modality>-*`` in the output folder.

* ``<modality>-<codec>.json`` per codec, in CompressAI's layout
  (``{name, description, results: {bpp: [...], psnr: [...], ...}}``) so that
  ``python -m compressai.utils.plot`` draws it beside CompressAI's own results (which
  read only ``name`` and ``results``). Our additions: in ``results``, per setting,
  ``encoding_seconds_per_unit`` and ``decoding_units_per_second`` of signal, whose unit
  is the top-level ``size_unit`` (speech: "s", so the latter is the real-time factor);
  and beside ``results``, ``at_anchor_rates``: the codec's quality at each point of the
  anchor's curve (bench/at_rates.py), ``{anchor, anchor_quality: [...], <rate unit>:
  [...], <metric>: [value or null], outside: [null, "below" or "above"], limit: [...]}``
  where ``limit`` is the codec's lowest or highest rate when the anchor's is outside.
  When the run has groups of items (bench/report.py), ``groups`` maps each group's name
  to ``{items: <count>, results: {...}, at_anchor_rates: {...}}``, the same layout on
  that group's records only;
* ``<modality>-items.csv`` (every measurement, with its ``group`` when there are groups),
  ``<modality>-mean.csv`` (the curves) and ``<modality>-at-anchor-rates.csv`` (the table
  above, one row per codec and point);
* ``<modality>-<metric>.png``, one rate–distortion plot per metric;
* ``<modality>-summary.json`` and ``<modality>-summary.md``: tables, BD metrics and
  quality at the anchor's rates (then the same per group), and the codecs that were
  skipped with the reason. The JSON's ``codecs`` are the per-codec files above; its
  ``groups`` lists ``{name, items: [...], bd: [...]}`` per group.

Every file is written atomically, so an interrupted run never leaves a torn one.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from unicomp.atomic import atomic_output
from unicomp.bench.at_rates import AtRate
from unicomp.bench.plots import rd_figure
from unicomp.bench.records import json_safe
from unicomp.bench.report import BenchReport, GroupReport
from unicomp.bench.summary import Curve
from unicomp.bench.tables import MB, at_rates_table, bd_table, markdown, results_table

#: CompressAI's names for the image metrics: its 1.2 plot tool reads the "-rgb" keys,
#: older result files and most papers' scripts the plain ones, so both are written.
COMPRESSAI_KEYS = {"psnr": ("psnr", "psnr-rgb"), "ms_ssim": ("ms-ssim", "ms-ssim-rgb")}


def write_outputs(report: BenchReport, out: Path) -> list[Path]:
    """Write every output file of ``report`` into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    prefix = out / report.modality
    paths = []
    for curve in report.curves:
        if curve.points:
            data = compressai_json(curve, report)
            paths.append(_write_text(Path(f"{prefix}-{curve.codec}.json"), _dump(data)))
    paths.append(_write_csv(Path(f"{prefix}-items.csv"), *_item_rows(report)))
    paths.append(_write_csv(Path(f"{prefix}-mean.csv"), *_mean_rows(report)))
    if report.at_anchor_rates:
        rows = _at_rate_rows(report)
        paths.append(_write_csv(Path(f"{prefix}-at-anchor-rates.csv"), *rows))
    for metric in report.metrics:
        title = f"{report.modality}: {metric} vs {report.rate_unit} ({len(report.items)} items)"
        figure = rd_figure(report.curves, report.rate_unit, metric, title)
        if figure is not None:
            with atomic_output(Path(f"{prefix}-{metric}.png"), overwrite=True) as temporary:
                figure.savefig(temporary, format="png")
            paths.append(Path(f"{prefix}-{metric}.png"))
    paths.append(_write_text(Path(f"{prefix}-summary.json"), _dump(summary_json(report))))
    paths.append(_write_text(Path(f"{prefix}-summary.md"), summary_markdown(report)))
    return paths


def compressai_json(curve: Curve, report: BenchReport) -> dict[str, Any]:
    """One codec's mean curve in CompressAI's result layout (plus our extra keys), and
    its curve per group of items under ``groups``."""
    data: dict[str, Any] = {"name": curve.codec, "description": curve.description}
    if report.size_unit is not None:
        data["size_unit"] = report.size_unit
    data.update(_curve_json(curve, report.at_anchor_rates, report))
    groups = {
        group.name: {"items": len(group.items), **_curve_json(mine, group.at_anchor_rates, report)}
        for group in report.groups
        for mine in group.curves
        if mine.codec == curve.codec and mine.points
    }
    if groups:
        data["groups"] = groups
    return data


def _curve_json(
    curve: Curve, at_anchor_rates: Sequence[AtRate], report: BenchReport
) -> dict[str, Any]:
    """``results`` of one curve, and ``at_anchor_rates`` where the codec has some."""
    points = curve.points
    results: dict[str, list[Any]] = {
        "quality": [p.quality for p in points],
        "items": [p.items for p in points],
        report.rate_unit: [p.rate for p in points],
    }
    results.update(_metric_columns([p.metrics for p in points]))
    results["encoding_time"] = [p.encode_seconds for p in points]
    results["decoding_time"] = [p.decode_seconds for p in points]
    results["encoding_peak_mb"] = [_mb(p.encode_peak_bytes) for p in points]
    results["decoding_peak_mb"] = [_mb(p.decode_peak_bytes) for p in points]
    if report.size_unit is not None:
        results["encoding_seconds_per_unit"] = [p.encode_seconds_per_unit for p in points]
        results["decoding_units_per_second"] = [p.decode_units_per_second for p in points]
    data: dict[str, Any] = {"results": results}
    mine = [r for r in at_anchor_rates if r.codec == curve.codec]
    if mine:
        data["at_anchor_rates"] = _at_rates_json(mine, report)
    return data


def summary_json(report: BenchReport) -> dict[str, Any]:
    """The whole run as plain data: curves, BD metrics, skipped codecs, failures."""
    return {
        "modality": report.modality,
        "rate_unit": report.rate_unit,
        "metrics": report.metrics,
        "items": report.items,
        "complete": not report.interrupted,
        "anchor": report.anchor,
        "size_unit": report.size_unit,
        "codecs": [compressai_json(c, report) for c in report.curves],
        "bd": [dataclasses.asdict(r) for r in report.bd],
        "unavailable": report.unavailable,
        "failures": {c.codec: c.failures for c in report.curves if c.failures},
        "groups": [
            {
                "name": group.name,
                "items": group.items,
                "bd": [dataclasses.asdict(r) for r in group.bd],
            }
            for group in report.groups
        ],
    }


def summary_markdown(report: BenchReport) -> str:
    """The tables of the run as Markdown, ready for benchmarks/README.md."""
    parts = [
        f"{len(report.items)} {report.modality} items; means per setting; rate from the "
        f"real file sizes; times are wall-clock per item on this machine.",
        "",
        *_markdown_tables(report, report),
    ]
    for group in report.groups:
        parts += ["", f"#### {group.name} ({len(group.items)} items)", ""]
        parts += _markdown_tables(group, report)
    if report.unavailable:
        parts += ["", "Skipped:"]
        parts += [f"- {name}: {reason}" for name, reason in report.unavailable.items()]
    failures = [(c.codec, f) for c in report.curves for f in c.failures]
    if failures:
        parts += ["", "Failed measurements:"]
        parts += [f"- {codec}: {failure}" for codec, failure in failures]
    if report.interrupted:
        parts += ["", "Interrupted: these results are partial."]
    return "\n".join(parts) + "\n"


def _markdown_tables(part: BenchReport | GroupReport, report: BenchReport) -> list[str]:
    """The results, BD and at-anchor-rates tables of the whole run or of one group."""
    parts = [
        markdown(results_table(part.curves, report.rate_unit, report.metrics, report.size_unit))
    ]
    if report.anchor is not None and part.bd:
        parts += ["", markdown(bd_table(part.bd, report.anchor))]
    if report.anchor is not None and part.at_anchor_rates:
        table = at_rates_table(
            part.at_anchor_rates, report.anchor, report.rate_unit, report.metrics
        )
        parts += ["", f"Quality at the rates of {report.anchor}:", "", markdown(table)]
    return parts


def _item_rows(report: BenchReport) -> tuple[list[str], list[list[Any]]]:
    headers = [
        "codec",
        "item",
        "quality",
        "bits",
        report.rate_unit,
        *report.metrics,
        "encode_s",
        "decode_s",
        "encode_peak_mb",
        "decode_peak_mb",
        "error",
    ]
    sized, grouped = report.size_unit is not None, bool(report.groups)
    if sized:
        headers.insert(4, f"size_{report.size_unit}")
    if grouped:
        headers.insert(2, "group")
    rows = [
        [
            r.codec,
            r.item,
            *([r.group or ""] if grouped else []),
            r.quality,
            r.bits,
            *([r.size] if sized else []),
            r.rate,
            *(r.metrics.get(m) for m in report.metrics),
            r.encode_seconds,
            r.decode_seconds,
            _mb(r.encode_peak_bytes),
            _mb(r.decode_peak_bytes),
            r.error or "",
        ]
        for r in report.records
    ]
    return headers, rows


def _mean_rows(report: BenchReport) -> tuple[list[str], list[list[Any]]]:
    headers = [
        "codec",
        "quality",
        "items",
        report.rate_unit,
        *report.metrics,
        "encode_s",
        "decode_s",
        "encode_peak_mb",
        "decode_peak_mb",
    ]
    unit = report.size_unit
    if unit is not None:
        headers += [f"encode_s_per_{unit}", f"decode_{unit}_per_s"]
    rows = [
        [
            c.codec,
            p.quality,
            p.items,
            p.rate,
            *(p.metrics.get(m) for m in report.metrics),
            p.encode_seconds,
            p.decode_seconds,
            _mb(p.encode_peak_bytes),
            _mb(p.decode_peak_bytes),
            *([p.encode_seconds_per_unit, p.decode_units_per_second] if unit else []),
        ]
        for c in report.curves
        for p in c.points
    ]
    return headers, rows


def _at_rate_rows(report: BenchReport) -> tuple[list[str], list[list[Any]]]:
    headers = [
        "anchor_quality",
        report.rate_unit,
        "codec",
        *report.metrics,
        "outside",
        f"limit_{report.rate_unit}",
    ]
    rows = [
        [
            r.setting,
            r.rate,
            r.codec,
            *(r.metrics.get(m) for m in report.metrics),
            r.outside or "",
            r.limit,
        ]
        for r in report.at_anchor_rates
    ]
    return headers, rows


def _at_rates_json(results: Sequence[AtRate], report: BenchReport) -> dict[str, Any]:
    """One codec's rows of the table of quality at the anchor's rates, as columns."""
    values = [{m: r.metrics.get(m, math.nan) for m in report.metrics} for r in results]
    return {
        "anchor": report.anchor,
        "anchor_quality": [r.setting for r in results],
        report.rate_unit: [r.rate for r in results],
        **_metric_columns(values),
        "outside": [r.outside for r in results],
        "limit": [r.limit for r in results],
    }


def _metric_columns(rows: Sequence[dict[str, float]]) -> dict[str, list[float]]:
    """Per metric, its values down ``rows``, under CompressAI's key(s) for it."""
    columns = {}
    for metric in sorted({m for row in rows for m in row}):
        values = [row.get(metric, math.nan) for row in rows]
        for key in COMPRESSAI_KEYS.get(metric, (metric,)):
            columns[key] = values
    return columns


def _write_csv(path: Path, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    with atomic_output(path, overwrite=True) as temporary:
        with temporary.open("w", newline="", encoding="utf-8") as stream:
            writer = csv.writer(stream)
            writer.writerow(headers)
            writer.writerows([json_safe(list(row)) for row in rows])
    return path


def _write_text(path: Path, text: str) -> Path:
    with atomic_output(path, overwrite=True) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return path


def _dump(data: Any) -> str:
    return json.dumps(json_safe(data), indent=1) + "\n"


def _mb(value: int | None) -> float | None:
    return None if value is None else value / MB

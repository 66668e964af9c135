"""The files a bench run leaves behind, all named ``<modality>-*`` in the output folder.

* ``<modality>-<codec>.json`` per codec, in CompressAI's layout
  (``{name, description, results: {bpp: [...], psnr: [...], ...}}``) so that
  ``python -m compressai.utils.plot`` draws it beside CompressAI's own results;
* ``<modality>-items.csv`` (every measurement) and ``<modality>-mean.csv`` (the curves);
* ``<modality>-<metric>.png``, one rate–distortion plot per metric;
* ``<modality>-summary.json`` and ``<modality>-summary.md``: tables, BD metrics against
  the anchor, and the codecs that were skipped with the reason.

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
from unicomp.bench.plots import rd_figure
from unicomp.bench.records import json_safe
from unicomp.bench.report import BenchReport
from unicomp.bench.summary import Curve
from unicomp.bench.tables import MB, bd_table, markdown, results_table

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
            data = compressai_json(curve, report.rate_unit)
            paths.append(_write_text(Path(f"{prefix}-{curve.codec}.json"), _dump(data)))
    paths.append(_write_csv(Path(f"{prefix}-items.csv"), *_item_rows(report)))
    paths.append(_write_csv(Path(f"{prefix}-mean.csv"), *_mean_rows(report)))
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


def compressai_json(curve: Curve, rate_unit: str) -> dict[str, Any]:
    """One codec's mean curve in CompressAI's result layout (plus our extra keys)."""
    points = curve.points
    results: dict[str, list[Any]] = {
        "quality": [p.quality for p in points],
        "items": [p.items for p in points],
        rate_unit: [p.rate for p in points],
    }
    for metric in sorted({m for p in points for m in p.metrics}):
        values = [p.metrics.get(metric, math.nan) for p in points]
        for key in COMPRESSAI_KEYS.get(metric, (metric,)):
            results[key] = values
    results["encoding_time"] = [p.encode_seconds for p in points]
    results["decoding_time"] = [p.decode_seconds for p in points]
    results["encoding_peak_mb"] = [_mb(p.encode_peak_bytes) for p in points]
    results["decoding_peak_mb"] = [_mb(p.decode_peak_bytes) for p in points]
    return {"name": curve.codec, "description": curve.description, "results": results}


def summary_json(report: BenchReport) -> dict[str, Any]:
    """The whole run as plain data: curves, BD metrics, skipped codecs, failures."""
    return {
        "modality": report.modality,
        "rate_unit": report.rate_unit,
        "metrics": report.metrics,
        "items": report.items,
        "complete": not report.interrupted,
        "anchor": report.anchor,
        "codecs": [compressai_json(c, report.rate_unit) for c in report.curves],
        "bd": [dataclasses.asdict(r) for r in report.bd],
        "unavailable": report.unavailable,
        "failures": {c.codec: c.failures for c in report.curves if c.failures},
    }


def summary_markdown(report: BenchReport) -> str:
    """The tables of the run as Markdown, ready for benchmarks/README.md."""
    parts = [
        f"{len(report.items)} {report.modality} items; means per setting; rate from the "
        f"real file sizes; times are wall-clock per item on this machine.",
        "",
        markdown(results_table(report.curves, report.rate_unit, report.metrics)),
    ]
    if report.anchor is not None and report.bd:
        parts += ["", markdown(bd_table(report.bd, report.anchor))]
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
    rows = [
        [
            r.codec,
            r.item,
            r.quality,
            r.bits,
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
        ]
        for c in report.curves
        for p in c.points
    ]
    return headers, rows


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

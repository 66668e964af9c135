"""``unicomp bench``: every chosen codec over its rate sweep on every item of a folder.

For each item and each setting of a codec's sweep, the signal is encoded and decoded
(each call timed and its peak memory taken, see :mod:`unicomp.bench.measure`), the
rate comes from the length of the bytes the codec produced, and the quality from the
modality's metrics plus any registered :class:`~unicomp.bench.base.Metric`. Before its
first measurement each codec codes that item once unmeasured, so one-time costs (lazy
imports, JIT compilation, first allocations) do not land on one item's times and
distort the speeds per second of signal. Each measurement is saved as it is made;
Ctrl-C stops the sweep and the outputs are still written from what is done, and
``resume=True`` measures only what is missing. When the modality sorts the items into
two or more groups (its optional ``bench_group``), the curves, BD metrics and quality at
the anchor's rates are also computed per group, on that group's records alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from unicomp.api import load_codec
from unicomp.bench.at_rates import AtRate, quality_at_anchor_rates
from unicomp.bench.base import Baseline, Metric, Quality
from unicomp.bench.export import write_outputs
from unicomp.bench.measure import measure
from unicomp.bench.model_codec import OPT_IN, VARIANTS, ModelCodec, default_codec
from unicomp.bench.records import Record, RecordStore, record_key
from unicomp.bench.report import BenchReport, GroupReport
from unicomp.bench.summary import BdResult, Curve, bd_against, summarize
from unicomp.core.codec import Codec
from unicomp.core.data import find_files
from unicomp.errors import InputError, ModelError, UsageError
from unicomp.modalities.base import Modality, bench_group, signal_size, size_unit
from unicomp.plugins.manager import Registry, get_registry

#: ``on_progress(done, total, what)``: called after every measurement (and skip).
ProgressCallback = Callable[[int, int, str], None]


def run_bench(
    modality: str,
    data: Path,
    out: Path,
    *,
    codecs: Sequence[str] | None = None,
    model: str | None = None,
    anchor: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    on_progress: ProgressCallback | None = None,
    registry: Registry | None = None,
    device: str = "cpu",
) -> BenchReport:
    """Sweep ``codecs`` (default: unicomp, its no-ADMM ablation and every baseline of
    ``modality``) over ``data``.

    ``model`` replaces the modality's default model for the unicomp codecs; ``anchor``
    is the codec the BD metrics and the table of quality at the anchor's rates compare
    against (default: the first codec with results, unicomp when it runs). unicomp's
    networks run on ``device``; the baselines run where their own libraries put them.
    """
    registry = registry or get_registry()
    chosen = registry.modality(modality)
    if not data.is_dir():
        raise InputError(f"data folder {data} does not exist")
    paths = find_files(chosen, data)
    items = [path.relative_to(data).as_posix() for path in paths]
    names = list(dict.fromkeys(codecs or default_names(registry, chosen)))
    if anchor is not None and anchor not in names:
        raise UsageError(f"anchor {anchor!r} is not among the codecs ({', '.join(names)})")
    store = RecordStore.open(out / f"{chosen.name}-records.jsonl", resume, overwrite)
    selected, unavailable = select_codecs(registry, chosen, names, model, device)
    extra_metrics = [m for m in registry.metrics if m.modality == chosen.name]
    wanted = {
        record_key(c.name, c.description, item, q)
        for c in selected
        for item in items
        for q in c.qualities
    }
    previous = {r.key: r for r in store.load() if r.key in wanted} if resume else {}
    previous = _with_groups(chosen, paths, items, previous)
    report = BenchReport(
        modality=chosen.name,
        rate_unit=chosen.rate_unit,
        metrics=[],
        items=items,
        records=list(previous.values()),
        curves=[],
        unavailable=unavailable,
        anchor=None,
        bd=[],
        resumed=len(previous),
        size_unit=size_unit(chosen),
    )
    try:
        _sweep(chosen, selected, paths, items, extra_metrics, previous, store, report, on_progress)
    except KeyboardInterrupt:
        report.interrupted = True
    report.metrics = _metric_names(report.records)
    report.curves = _curves(report.records, selected)
    report.anchor = _anchor(report.curves, anchor)
    report.bd, report.at_anchor_rates = _compare(report.curves, report.anchor, report.metrics)
    report.groups = _groups(report, selected)
    report.outputs = write_outputs(report, out)
    return report


def available_names(registry: Registry, modality: Modality) -> list[str]:
    """The unicomp codecs, then every baseline registered for ``modality``, in order."""
    baselines = [b.name for b in registry.baselines.values() if b.modality == modality.name]
    return [*VARIANTS, *baselines]


def default_names(registry: Registry, modality: Modality) -> list[str]:
    """What a bench without ``--codecs`` runs: every available codec but the opt-in."""
    return [name for name in available_names(registry, modality) if name not in OPT_IN]


def select_codecs(
    registry: Registry,
    modality: Modality,
    names: Sequence[str],
    model: str | None,
    device: str = "cpu",
) -> tuple[list[Baseline], dict[str, str]]:
    """The runnable codecs among ``names``, and why each of the others cannot run."""
    known = available_names(registry, modality)
    selected: list[Baseline] = []
    unavailable: dict[str, str] = {}
    model_codec, missing = None, None
    if any(name in VARIANTS for name in names):  # the unicomp codecs share one model
        model_codec, missing = _unicomp_codec(registry, modality, model, device)
    for name in names:
        codec: Baseline | None
        if name in VARIANTS:
            codec = ModelCodec(model_codec, name) if model_codec else None
            reason = missing
        elif name in registry.baselines:
            codec = registry.baselines[name]
            if codec.modality != modality.name:
                raise UsageError(f"codec {name!r} codes {codec.modality}, not {modality.name}")
            reason = codec.unavailable()
        else:
            raise UsageError(
                f"unknown codec {name!r} for {modality.name} (known: {', '.join(known)})"
            )
        if reason is None and codec is not None:
            selected.append(codec)
        else:
            unavailable[name] = reason or "unavailable"
    return selected, unavailable


def _unicomp_codec(
    registry: Registry, modality: Modality, model: str | None, device: str
) -> tuple[Codec | None, str | None]:
    """The model unicomp is swept with, or why there is none: a missing model is
    reported, never faked."""
    try:
        if model is None:
            codec = default_codec(registry, modality, device)
        else:
            codec = load_codec(model, registry=registry, device=device)
    except ModelError as error:
        which = f"model {model}" if model else f"no trained default {modality.name} model"
        return None, f"{which}: {error}"
    if codec.modality.name != modality.name:
        raise UsageError(f"model {codec.name!r} codes {codec.modality.name}, not {modality.name}")
    return codec, None


def _sweep(
    modality: Modality,
    codecs: Sequence[Baseline],
    paths: Sequence[Path],
    items: Sequence[str],
    extra_metrics: Sequence[Metric],
    previous: dict[tuple[str, ...], Record],
    store: RecordStore,
    report: BenchReport,
    on_progress: ProgressCallback | None,
) -> None:
    total = len(items) * sum(len(c.qualities) for c in codecs)
    done = 0
    warm: set[str] = set()
    for path, item in zip(paths, items, strict=True):
        signal = None
        for codec in codecs:
            for quality in codec.qualities:
                what = f"{codec.name} {quality} on {item}"
                if record_key(codec.name, codec.description, item, quality) not in previous:
                    if signal is None:
                        signal = modality.load(path)
                    if codec.name not in warm:
                        _warm_up(codec, signal, quality)
                        warm.add(codec.name)
                    record = measure_one(modality, codec, signal, item, quality, extra_metrics)
                    store.append(record)
                    report.records.append(record)
                    report.measured += 1
                done += 1
                if on_progress is not None:
                    on_progress(done, total, what)


def _warm_up(codec: Baseline, signal: Any, quality: Quality) -> None:
    """Code ``signal`` once, unmeasured; a failure is left for the measurement to record."""
    with contextlib.suppress(Exception):
        codec.decode(codec.encode(signal, quality), signal)


def measure_one(
    modality: Modality,
    codec: Baseline,
    signal: Any,
    item: str,
    quality: Quality,
    extra_metrics: Sequence[Metric] = (),
) -> Record:
    """Encode, decode and score one signal at one setting; a failure becomes the record."""
    record = functools.partial(
        Record,
        codec=codec.name,
        description=codec.description,
        item=item,
        quality=quality,
        group=bench_group(modality, signal),
    )
    try:
        encoded = measure(lambda: codec.encode(signal, quality))
        decoded = measure(lambda: codec.decode(encoded.value, signal))
        scores = dict(modality.metrics(signal, decoded.value))
        scores.update({m.name: float(m.compute(signal, decoded.value)) for m in extra_metrics})
    except KeyboardInterrupt:
        raise
    except Exception as error:  # one codec failing on one item must not end a long run
        return record(error=f"{type(error).__name__}: {error}")
    bits = 8 * len(encoded.value)
    return record(
        bits=bits,
        rate=modality.rate(bits, signal),
        metrics=scores,
        encode_seconds=encoded.seconds,
        decode_seconds=decoded.seconds,
        encode_peak_bytes=encoded.peak_bytes,
        decode_peak_bytes=decoded.peak_bytes,
        size=signal_size(modality, signal),
    )


def _with_groups(
    modality: Modality,
    paths: Sequence[Path],
    items: Sequence[str],
    previous: dict[tuple[str, ...], Record],
) -> dict[tuple[str, ...], Record]:
    """Resumed records from before groups were stored, given their item's group: else a
    resumed run would leave those items out of the per-group tables."""
    if not hasattr(modality, "bench_group"):
        return previous
    lacking = {r.item for r in previous.values() if r.group is None}
    groups = {
        item: bench_group(modality, modality.load(path))
        for path, item in zip(paths, items, strict=True)
        if item in lacking
    }
    return {
        key: dataclasses.replace(r, group=groups[r.item]) if r.group is None else r
        for key, r in previous.items()
    }


def _curves(records: Sequence[Record], codecs: Sequence[Baseline]) -> list[Curve]:
    return [summarize(records, c.name, c.description, c.qualities) for c in codecs]


def _compare(
    curves: Sequence[Curve], anchor: str | None, metrics: Sequence[str]
) -> tuple[list[BdResult], list[AtRate]]:
    """BD metrics and quality at the anchor's rates against ``anchor``'s curve among
    ``curves``; none where that curve has no points."""
    base = next((c for c in curves if c.codec == anchor and c.points), None)
    if base is None:
        return [], []
    bd = bd_against(base, [c for c in curves if c.points], metrics)
    return bd, quality_at_anchor_rates(base, curves, metrics)


def _groups(report: BenchReport, codecs: Sequence[Baseline]) -> list[GroupReport]:
    """The run's summary again per group, each from its own records only, against the
    run's anchor; none unless the items fall into two or more groups."""
    names = sorted({r.group for r in report.records if r.group is not None})
    if len(names) < 2:
        return []
    groups = []
    for name in names:
        records = [r for r in report.records if r.group == name]
        members = {r.item for r in records}
        curves = _curves(records, codecs)
        bd, at_rates = _compare(curves, report.anchor, report.metrics)
        items = [item for item in report.items if item in members]
        groups.append(GroupReport(name, items, curves, bd, at_rates))
    return groups


def _metric_names(records: Sequence[Record]) -> list[str]:
    """Metric names in the order the modality reports them."""
    return list(dict.fromkeys(name for r in records for name in r.metrics))


def _anchor(curves: Sequence[Curve], wanted: str | None) -> str | None:
    """``wanted`` if it has results, else (when not named) the first codec that has."""
    if wanted is not None:
        return wanted if any(c.codec == wanted and c.points for c in curves) else None
    return next((c.codec for c in curves if c.points), None)

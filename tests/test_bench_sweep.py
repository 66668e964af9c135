"""``unicomp bench`` end to end on two tiny images and two short clips: every codec runs
its whole sweep on every item, a unicomp model is swept across its range of rates like
a baseline (at each encoder effort, the fast one being the ablation of the search),
what cannot run is reported with the reason, and Ctrl-C keeps what is done for
``--resume``."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import write_csv
from PIL import Image
from typer.testing import CliRunner
from unicomp_sensor.modality import SensorModality, SensorSignal

from unicomp.bench.base import Quality
from unicomp.bench.run import available_names, default_names, run_bench
from unicomp.bench.summary import bd_against, summarize
from unicomp.cli import app
from unicomp.core.checkpoint import Model, read_card, save_model
from unicomp.core.codec import Codec
from unicomp.core.coders import PER_CHANNEL
from unicomp.core.config import merge
from unicomp.core.entropy import EntropyTables
from unicomp.core.file_rate import TOLERANCE
from unicomp.core.points import OperatingPoint, parse_rate
from unicomp.core.quantizer import Quantizer
from unicomp.errors import UsageError
from unicomp.plugins.manager import Registry


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A colour and a grey photo-like image: smooth shading, texture and noise."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:48, 0:64]
    shade = 120 + 60 * np.sin(x / 9.0) * np.cos(y / 7.0) + rng.normal(0, 6, (48, 64))
    colour = np.stack([shade, shade[::-1], 255 - shade], axis=2)
    Image.fromarray(np.clip(colour, 0, 255).astype(np.uint8)).save(folder / "colour.png")
    Image.fromarray(np.clip(shade, 0, 255).astype(np.uint8)).save(folder / "grey.png")
    return folder


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One second of voiced, syllable-like sound at 16 kHz and at 8 kHz."""
    folder = tmp_path_factory.mktemp("clips")
    for name, rate in (("wide.wav", 16000), ("narrow.wav", 8000)):
        t = np.arange(rate) / rate
        pitch = 2 * np.pi * np.cumsum(120 + 40 * t) / rate
        voice = sum(np.sin(k * pitch) / k for k in range(1, 20))
        envelope = np.clip(np.sin(2 * np.pi * 3 * t), 0, None) ** 0.5
        sf.write(folder / name, 0.1 * envelope * voice, rate)
    return folder


def test_jpeg_and_webp_run_their_whole_sweep_on_every_image(
    registry: Registry, photos: Path, tmp_path: Path
) -> None:
    report = run_bench("image", photos, tmp_path, codecs=["jpeg", "webp"], registry=registry)
    assert report.items == ["colour.png", "grey.png"] and not report.unavailable
    for curve in report.curves:
        baseline = registry.baselines[curve.codec]
        assert not curve.failures
        assert [p.quality for p in curve.points] == list(baseline.qualities)
        assert all(p.items == 2 and p.rate > 0 for p in curve.points)
        lowest, highest = curve.points[0], curve.points[-1]
        assert highest.rate > lowest.rate
        assert highest.metrics["psnr"] > lowest.metrics["psnr"]
    assert report.measured == 2 * (9 + 8)
    assert report.anchor == "jpeg"
    assert {r.metric for r in report.bd} == {"psnr", "ms_ssim", "chroma_psnr", "flat_psnr"}
    assert {r.codec for r in report.at_anchor_rates} == {"jpeg", "webp"}
    assert report.size_unit == "Mpx"
    # images have no groups: one summary only
    assert report.groups == [] and {r.group for r in report.records} == {None}
    assert all(p.encode_seconds_per_unit and p.decode_units_per_second for p in curve.points)
    assert json.loads((tmp_path / "image-webp.json").read_text())["name"] == "webp"


def test_codec2_runs_every_mode_on_every_clip_with_rates_from_the_file_size(
    registry: Registry, clips: Path, tmp_path: Path
) -> None:
    reason = registry.baselines["codec2"].unavailable()
    if reason is not None:
        pytest.skip(f"codec2 cannot run here: {reason}")
    report = run_bench("speech", clips, tmp_path, codecs=["codec2"], registry=registry)
    (curve,) = report.curves
    assert not curve.failures
    rates = {p.quality: p.rate for p in curve.points}
    # 3200 bit/s in 8-byte frames, plus the 7-byte header over one second
    assert rates["3200"] == pytest.approx(3.2 + 7 * 8 / 1000, rel=0.05)
    assert rates["700C"] < rates["1200"] < rates["2400"] < rates["3200"]
    assert all(0 < p.metrics["stoi"] <= 1 for p in curve.points)
    assert report.size_unit == "s" and {r.size for r in report.records} == {1.0}
    # the 8 kHz clip is narrowband, the 16 kHz one wideband, each reported apart
    assert [(g.name, g.items) for g in report.groups] == [
        ("narrowband", ["narrow.wav"]),
        ("wideband", ["wide.wav"]),
    ]


def test_a_missing_tool_is_reported_with_its_package_and_nothing_fails(
    registry: Registry, clips: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools-here"))
    report = run_bench("speech", clips, tmp_path, codecs=["codec2", "opus"], registry=registry)
    assert "apt-get install codec2" in report.unavailable["codec2"]
    assert "apt-get install opus-tools" in report.unavailable["opus"]
    assert report.curves == [] and (tmp_path / "speech-summary.md").exists()


@pytest.fixture(scope="module")
def readings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("readings")
    rng = np.random.default_rng(1)
    for name in ("a.csv", "b.csv"):
        write_csv(folder / name, rng.standard_normal(700).cumsum())
    return folder


@pytest.fixture(scope="module")
def sensor_card(
    sensor: SensorModality, readings: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A sensor model with two operating points, labelled with the mean rates their
    weights give the readings; random weights are enough to bench it."""
    torch.manual_seed(0)
    config = sensor.default_config()
    encoder, generator, _ = sensor.build_networks(config.network)
    channels, centers = config.network["latent_channels"], config.quantizer.num_centers
    # Skewed tables, so that the rate weight moves the rate.
    tables = EntropyTables.from_counts(torch.logspace(3, 0, centers).repeat(channels, 1))
    points = [
        OperatingPoint(label, weight, tables, PER_CHANNEL, tables, generator)
        for label, weight in (("high", 0.05), ("low", 2.0))
    ]
    model = Model(config, encoder, Quantizer(config.quantizer), points, sha256="0" * 64)
    codec = Codec(sensor, model)
    signals = [sensor.load(path) for path in sorted(readings.glob("*.csv"))]
    # Labels inside the rates the two weights give (a longer label lengthens the header).
    for point, margin in zip(points, (0.9, 1.2), strict=True):
        rates = [
            codec.encode(s, operating_point=point.label, effort="fast")[1].rate for s in signals
        ]
        point.label = f"{margin * sum(rates) / len(rates):.3g}{sensor.rate_unit}"
    model.config = merge(config, {"rates": [p.label for p in points]})
    return save_model(model, tmp_path_factory.mktemp("sensor-model"))


def test_a_unicomp_model_is_swept_across_its_range_at_each_effort(
    registry: Registry, sensor_card: Path, readings: Path, tmp_path: Path
) -> None:
    report = run_bench(
        "sensor",
        readings,
        tmp_path,
        codecs=["unicomp", "unicomp-fast"],
        model=str(sensor_card),
        registry=registry,
    )
    searched, fast = report.curves
    assert searched.codec == "unicomp" and "sensor-default" in searched.description
    assert "effort default" in searched.description
    assert fast.codec == "unicomp-fast" and "effort fast" in fast.description
    labels = read_card(sensor_card)["config"]["rates"]
    low, high = sorted(parse_rate(label, "bits/sample") for label in labels)
    for curve in report.curves:
        assert not curve.failures
        asked = [parse_rate(str(p.quality), "bits/sample") for p in curve.points]
        assert len(asked) == 6 and asked == sorted(asked)
        assert asked[0] == pytest.approx(low, rel=1e-3) and asked[-1] == pytest.approx(
            high, rel=1e-3
        )
        for point, rate in zip(curve.points, asked, strict=True):
            assert point.items == 2 and point.metrics
            assert (1 - TOLERANCE) * rate <= point.rate <= rate
    assert all(
        (1 - TOLERANCE) * parse_rate(str(r.quality), "bits/sample")
        <= r.rate
        <= parse_rate(str(r.quality), "bits/sample")
        for r in report.records
    )
    assert report.anchor == "unicomp"
    at_rates = [r for r in report.at_anchor_rates if r.codec == "unicomp-fast"]
    assert [r.setting for r in at_rates] == [str(p.quality) for p in searched.points]
    # a modality without the optional size: speed per item only
    assert report.size_unit is None and searched.points[0].encode_seconds_per_unit is None


def test_the_fast_effort_runs_beside_unicomp_by_default_and_best_only_when_named(
    registry: Registry, sensor: SensorModality
) -> None:
    assert available_names(registry, sensor)[:3] == ["unicomp", "unicomp-fast", "unicomp-best"]
    assert default_names(registry, sensor) == ["unicomp", "unicomp-fast"]


def test_without_model_the_default_model_is_found_in_the_model_path(
    registry: Registry,
    sensor_card: Path,
    readings: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("UNICOMP_MODEL_PATH", str(sensor_card.parent))
    report = run_bench(
        "sensor", readings, tmp_path / "out", codecs=["unicomp-fast"], registry=registry
    )
    assert len(report.curves[0].points) == 6 and not report.curves[0].failures


def test_a_missing_model_is_skipped_with_the_reason(
    registry: Registry, photos: Path, tmp_path: Path
) -> None:
    report = run_bench(
        "image",
        photos,
        tmp_path,
        codecs=["unicomp", "unicomp-fast", "jpeg"],
        model="no-such-model",
        registry=registry,
    )
    assert "'no-such-model' not found" in report.unavailable["unicomp"]
    assert "'no-such-model' not found" in report.unavailable["unicomp-fast"]
    assert [c.codec for c in report.curves] == ["jpeg"]


def test_ctrl_c_keeps_what_is_done_and_resume_measures_only_the_rest(
    registry: Registry, photos: Path, tmp_path: Path
) -> None:
    def interrupt_at_five(done: int, total: int, what: str) -> None:
        if done == 5:
            raise KeyboardInterrupt

    first = run_bench(
        "image",
        photos,
        tmp_path,
        codecs=["jpeg"],
        on_progress=interrupt_at_five,
        registry=registry,
    )
    assert first.interrupted and len(first.records) == 5
    assert "Interrupted" in (tmp_path / "image-summary.md").read_text()
    second = run_bench("image", photos, tmp_path, codecs=["jpeg"], resume=True, registry=registry)
    assert not second.interrupted
    assert (second.resumed, second.measured) == (5, 2 * 9 - 5)
    assert all(p.items == 2 for p in second.curves[0].points)


def test_unknown_codecs_and_anchors_are_usage_errors(
    registry: Registry, photos: Path, tmp_path: Path
) -> None:
    with pytest.raises(UsageError, match="unknown codec 'nope' for image"):
        run_bench("image", photos, tmp_path, codecs=["nope"], registry=registry)
    with pytest.raises(UsageError, match="codes speech, not image"):
        run_bench("image", photos, tmp_path, codecs=["opus"], registry=registry)
    with pytest.raises(UsageError, match="anchor 'webp' is not among"):
        run_bench("image", photos, tmp_path, codecs=["jpeg"], anchor="webp", registry=registry)


def test_cli_prints_the_tables_and_writes_the_files(photos: Path, tmp_path: Path) -> None:
    arguments = ["bench", "--modality", "image", "--data", str(photos), "--out", str(tmp_path)]
    done = CliRunner().invoke(app, [*arguments, "--codecs", "jpeg,webp"])
    assert done.exit_code == 0, done.output
    assert "jpeg" in done.output and "Bjøntegaard" in done.output
    assert "Quality at the rates of jpeg" in done.output
    assert "enc s/Mpx | dec Mpx/s" in (tmp_path / "image-summary.md").read_text()
    assert (tmp_path / "image-psnr.png").exists()
    again = CliRunner().invoke(app, arguments)
    assert isinstance(again.exception, UsageError) and "--resume" in str(again.exception)


class Rounding:
    """A sensor baseline: readings rounded to steps of 2^-quality and zlib-packed, as
    values or (``delta``) as differences, which pack tighter on a smooth reading and
    looser on white noise."""

    modality = "sensor"
    qualities: tuple[Quality, ...] = (1, 2, 3, 4)

    def __init__(self, delta: bool) -> None:
        self.delta = delta
        self.name = "delta" if delta else "plain"
        self.description = f"{self.name} rounding for tests"

    def unavailable(self) -> str | None:
        return None

    def encode(self, signal: SensorSignal, quality: Quality) -> bytes:
        steps = np.round(signal.values * 2.0 ** int(quality)).astype(np.int32)
        packed = np.diff(steps, prepend=0) if self.delta else steps
        return bytes([int(quality)]) + zlib.compress(packed.astype(np.int32).tobytes(), 9)

    def decode(self, data: bytes, reference: Any) -> SensorSignal:
        packed = np.frombuffer(zlib.decompress(data[1:]), dtype=np.int32)
        steps = np.cumsum(packed) if self.delta else packed
        return SensorSignal(steps / 2.0 ** data[0])


def smoothness(modality: SensorModality, signal: SensorSignal) -> str:
    """A ``bench_group`` for the sensor: steps smaller than the spread mean a smooth reading."""
    values = signal.values
    return "smooth" if np.std(np.diff(values)) < np.std(values) else "noisy"


@pytest.fixture()
def grouped(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> Registry:
    """The sensor modality with groups, and the plain and delta rounding baselines."""
    monkeypatch.setattr(SensorModality, "bench_group", smoothness, raising=False)
    for codec in (Rounding(delta=False), Rounding(delta=True)):
        monkeypatch.setitem(registry.baselines, codec.name, codec)
    return registry


@pytest.fixture(scope="module")
def mixed_readings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three smooth readings (random walks) and two noisy ones (white noise)."""
    folder = tmp_path_factory.mktemp("mixed")
    rng = np.random.default_rng(2)
    for name in ("walk-a.csv", "walk-b.csv", "walk-c.csv"):
        write_csv(folder / name, rng.standard_normal(600).cumsum())
    for name in ("noise-a.csv", "noise-b.csv"):
        write_csv(folder / name, rng.standard_normal(600))
    return folder


def test_each_group_of_items_is_summarised_on_its_own_records(
    grouped: Registry, mixed_readings: Path, tmp_path: Path
) -> None:
    report = run_bench(
        "sensor", mixed_readings, tmp_path, codecs=["plain", "delta"], registry=grouped
    )
    noisy, smooth = report.groups
    assert (noisy.name, noisy.items) == ("noisy", ["noise-a.csv", "noise-b.csv"])
    assert (smooth.name, smooth.items) == ("smooth", ["walk-a.csv", "walk-b.csv", "walk-c.csv"])
    for group in report.groups:
        assert all(p.items == len(group.items) for c in group.curves for p in c.points)
        mine = [r for r in report.records if r.item in group.items]
        curves = [summarize(mine, c.codec, c.description, Rounding.qualities) for c in group.curves]
        assert group.curves == curves
        assert group.bd == bd_against(curves[0], curves, report.metrics)
        assert [r.rate for r in group.at_anchor_rates if r.codec == "plain"] == [
            p.rate for p in curves[0].points
        ]

    def bd_rate(results: list[Any]) -> float:
        return next(r.rate_change for r in results if r.metric == "snr_db")

    # differences pack smooth readings tighter and noise looser than the values do
    assert bd_rate(smooth.bd) < 0 < bd_rate(noisy.bd)
    assert bd_rate(smooth.bd) < bd_rate(report.bd) < bd_rate(noisy.bd)
    summary = (tmp_path / "sensor-summary.md").read_text()
    assert "#### noisy (2 items)" in summary and "#### smooth (3 items)" in summary
    delta = json.loads((tmp_path / "sensor-delta.json").read_text())
    assert {name: g["items"] for name, g in delta["groups"].items()} == {"noisy": 2, "smooth": 3}


def test_records_from_before_groups_get_their_group_when_resumed(
    grouped: Registry, mixed_readings: Path, tmp_path: Path
) -> None:
    run_bench("sensor", mixed_readings, tmp_path, codecs=["plain", "delta"], registry=grouped)
    path = tmp_path / "sensor-records.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps({**r, "group": None}) + "\n" for r in lines))
    resumed = run_bench(
        "sensor", mixed_readings, tmp_path, codecs=["plain", "delta"], resume=True, registry=grouped
    )
    assert resumed.measured == 0 and resumed.resumed == len(lines)
    assert [(g.name, len(g.items)) for g in resumed.groups] == [("noisy", 2), ("smooth", 3)]


def test_items_of_one_group_get_no_group_sections(
    grouped: Registry, readings: Path, tmp_path: Path
) -> None:
    report = run_bench("sensor", readings, tmp_path, codecs=["plain", "delta"], registry=grouped)
    assert {r.group for r in report.records} == {"smooth"} and report.groups == []
    assert "####" not in (tmp_path / "sensor-summary.md").read_text()


def test_cli_prints_a_section_per_group_after_the_whole_run(
    grouped: Registry, mixed_readings: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("unicomp.bench.run.get_registry", lambda: grouped)
    arguments = ["bench", "--modality", "sensor", "--data", str(mixed_readings)]
    done = CliRunner().invoke(app, [*arguments, "--out", str(tmp_path), "--codecs", "plain,delta"])
    assert done.exit_code == 0, done.output
    whole = done.output.index("sensor: 5 items")
    noisy, smooth = done.output.index("noisy (2 items)"), done.output.index("smooth (3 items)")
    assert whole < noisy < smooth
    assert "Bjøntegaard deltas (noisy)" in done.output
    assert "Quality at the rates of plain (smooth)" in done.output

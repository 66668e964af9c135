"""The files a bench run writes: CompressAI's JSON layout (its own plot tool reads it),
CSVs with every measurement, plots, and a Markdown summary; and the records file that
makes a run resumable."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from unicomp.bench.at_rates import AtRate, quality_at_anchor_rates
from unicomp.bench.export import write_outputs
from unicomp.bench.records import Record, RecordStore
from unicomp.bench.report import BenchReport, GroupReport
from unicomp.bench.summary import BdResult, Curve, Point, bd_against, summarize
from unicomp.bench.tables import results_table
from unicomp.errors import UsageError

QUALITIES = (10, 50, 90)


def records(codec: str, gain: float, items: tuple[str, ...] = ("a.png", "b.png")) -> list[Record]:
    """Two items at three settings; ``gain`` dB better than a made-up baseline."""
    return [
        Record(
            codec=codec,
            description=f"{codec} for tests",
            item=item,
            quality=quality,
            bits=int(8000 * quality / 10),
            rate=0.1 * quality / 10 * (1 + index),
            metrics={"psnr": 25 + gain + quality / 10 + index, "ms_ssim": 0.9 + quality / 1000},
            encode_seconds=0.01,
            decode_seconds=0.002,
            encode_peak_bytes=3 * 1024 * 1024,
            decode_peak_bytes=None,
        )
        for index, item in enumerate(items)
        for quality in QUALITIES
    ]


def summaries(done: list[Record]) -> tuple[list[Curve], list[BdResult], list[AtRate]]:
    """The curves of jpeg and webp, and webp against jpeg."""
    curves = [summarize(done, c, f"{c} for tests", QUALITIES) for c in ("jpeg", "webp")]
    metrics = ["psnr", "ms_ssim"]
    bd = bd_against(curves[0], curves, metrics)
    return curves, bd, quality_at_anchor_rates(curves[0], curves, metrics)


@pytest.fixture()
def report() -> BenchReport:
    done = records("jpeg", 0.0) + records("webp", 1.5)
    done.append(Record("webp", "webp for tests", "c.png", 10, error="BaselineError: boom"))
    curves, bd, at_rates = summaries(done)
    return BenchReport(
        modality="image",
        rate_unit="bpp",
        metrics=["psnr", "ms_ssim"],
        items=["a.png", "b.png", "c.png"],
        records=done,
        curves=curves,
        unavailable={"avif": "this Pillow was built without avif support"},
        anchor="jpeg",
        bd=bd,
        at_anchor_rates=at_rates,
    )


def test_json_is_in_compressai_layout_and_its_plot_tool_reads_it(
    report: BenchReport, tmp_path: Path
) -> None:
    from compressai.utils.plot.__main__ import parse_json_file

    write_outputs(report, tmp_path)
    data = json.loads((tmp_path / "image-webp.json").read_text())
    assert data["name"] == "webp" and data["description"] == "webp for tests"
    results = data["results"]
    assert results["quality"] == list(QUALITIES)
    assert results["bpp"] == pytest.approx([0.15, 0.75, 1.35])
    assert results["psnr"] == pytest.approx([28.0, 32.0, 36.0])
    for key in ("ms-ssim", "encoding_time", "decoding_time", "encoding_peak_mb"):
        assert len(results[key]) == len(QUALITIES)
    plotted = parse_json_file(tmp_path / "image-webp.json", "psnr")
    assert plotted["name"] == "webp" and plotted["ys"] == results["psnr"]
    assert parse_json_file(tmp_path / "image-webp.json", "ms-ssim")["xs"] == results["bpp"]


def test_json_has_the_quality_at_the_anchors_rates_beside_the_results(
    report: BenchReport, tmp_path: Path
) -> None:
    write_outputs(report, tmp_path)
    table = json.loads((tmp_path / "image-webp.json").read_text())["at_anchor_rates"]
    assert table["anchor"] == "jpeg" and table["anchor_quality"] == list(QUALITIES)
    assert table["bpp"] == pytest.approx([0.15, 0.75, 1.35])
    # the same rates as its own points, 1.5 dB above the anchor's
    assert table["psnr"] == pytest.approx([28.0, 32.0, 36.0])
    assert table["outside"] == [None, None, None]
    summary = json.loads((tmp_path / "image-summary.json").read_text())
    assert summary["codecs"][1]["at_anchor_rates"] == table


def test_csv_has_every_measurement_and_the_means(report: BenchReport, tmp_path: Path) -> None:
    write_outputs(report, tmp_path)
    with (tmp_path / "image-items.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 13
    assert rows[-1]["error"] == "BaselineError: boom" and rows[-1]["psnr"] == ""
    with (tmp_path / "image-mean.csv").open() as stream:
        means = list(csv.DictReader(stream))
    assert [(m["codec"], m["quality"], m["items"]) for m in means][:2] == [
        ("jpeg", "10", "2"),
        ("jpeg", "50", "2"),
    ]
    with (tmp_path / "image-at-anchor-rates.csv").open() as stream:
        at_rates = list(csv.DictReader(stream))
    assert [(r["anchor_quality"], r["codec"]) for r in at_rates][:2] == [
        ("10", "jpeg"),
        ("10", "webp"),
    ]
    assert float(at_rates[1]["psnr"]) == pytest.approx(28.0) and at_rates[1]["outside"] == ""


def test_plots_and_summary_are_written(report: BenchReport, tmp_path: Path) -> None:
    outputs = write_outputs(report, tmp_path)
    for name in ("image-psnr.png", "image-ms_ssim.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")
    summary = (tmp_path / "image-summary.md").read_text()
    assert "| webp | 10 | 2 | 0.15 | 28 | 0.91 |" in summary
    assert "BD-rate vs jpeg" in summary
    assert "Quality at the rates of jpeg" in summary
    assert "| 10 | 0.15 | webp | 28 | 0.91 | interpolated |" in summary
    assert "- avif: this Pillow was built without avif support" in summary
    assert "- webp: c.png at 10: BaselineError: boom" in summary
    data = json.loads((tmp_path / "image-summary.json").read_text())
    assert data["failures"] == {"webp": ["c.png at 10: BaselineError: boom"]}
    assert set(outputs) == set(tmp_path.iterdir())


def test_each_group_follows_the_whole_run_in_the_markdown_and_the_json(
    report: BenchReport, tmp_path: Path
) -> None:
    """webp is 1.5 dB better on two wideband clips and 1 dB worse on two narrowband ones."""
    for name, gain in (("narrowband", -1.0), ("wideband", 1.5)):
        items = (f"{name}-1.wav", f"{name}-2.wav")
        curves, bd, at_rates = summaries(records("jpeg", 0.0, items) + records("webp", gain, items))
        report.groups.append(GroupReport(name, list(items), curves, bd, at_rates))
    write_outputs(report, tmp_path)
    summary = (tmp_path / "image-summary.md").read_text()
    whole, narrow, wide = (
        summary.index(s) for s in ("| codec |", "#### narrowband", "#### wideband")
    )
    assert whole < narrow < wide
    assert "#### narrowband (2 items)" in summary and "#### wideband (2 items)" in summary
    assert "| webp | psnr | +31.5 | -1.000 |" in summary[narrow:wide]
    assert "| webp | psnr | -33.5 | +1.500 |" in summary[wide:]
    data = json.loads((tmp_path / "image-summary.json").read_text())
    assert [(g["name"], g["items"]) for g in data["groups"]] == [
        ("narrowband", ["narrowband-1.wav", "narrowband-2.wav"]),
        ("wideband", ["wideband-1.wav", "wideband-2.wav"]),
    ]
    psnr = next(
        r for r in data["groups"][0]["bd"] if r["codec"] == "webp" and r["metric"] == "psnr"
    )
    assert psnr["quality_change"] == pytest.approx(-1.0)
    webp = json.loads((tmp_path / "image-webp.json").read_text())
    assert webp["results"]["psnr"] == pytest.approx([28.0, 32.0, 36.0])  # the whole run's
    wideband = webp["groups"]["wideband"]
    assert wideband["items"] == 2 and wideband["results"]["psnr"] == pytest.approx([28, 32, 36])
    assert webp["groups"]["narrowband"]["results"]["psnr"] == pytest.approx([25.5, 29.5, 33.5])
    assert webp["groups"]["narrowband"]["at_anchor_rates"]["anchor"] == "jpeg"
    assert data["codecs"][1] == webp
    with (tmp_path / "image-items.csv").open() as stream:
        assert next(csv.reader(stream))[:3] == ["codec", "item", "group"]


def test_without_groups_the_outputs_keep_their_layout(report: BenchReport, tmp_path: Path) -> None:
    write_outputs(report, tmp_path)
    assert "####" not in (tmp_path / "image-summary.md").read_text()
    assert "groups" not in json.loads((tmp_path / "image-webp.json").read_text())
    assert json.loads((tmp_path / "image-summary.json").read_text())["groups"] == []
    with (tmp_path / "image-items.csv").open() as stream:
        assert "group" not in next(csv.reader(stream))


def test_bd_metrics_of_a_uniformly_better_curve_are_negative_rate_positive_quality(
    report: BenchReport,
) -> None:
    psnr = next(r for r in report.bd if r.metric == "psnr")
    assert psnr.codec == "webp" and psnr.note is None
    assert psnr.rate_change is not None and psnr.rate_change < 0
    assert psnr.quality_change == pytest.approx(1.5)


def test_bd_metrics_over_a_sliver_of_common_range_are_flagged_unreliable() -> None:
    def curve(name: str, points: list[tuple[float, float]]) -> Curve:
        return Curve(
            name,
            name,
            [Point(i, 1, r, {"psnr": q}, 0.0, 0.0, None, None) for i, (r, q) in enumerate(points)],
            [],
        )

    anchor = curve("anchor", [(0.2, 20.0), (0.4, 25.0), (0.8, 30.0)])
    sliver = curve("sliver", [(0.05, 15.0), (0.1, 18.0), (0.21, 20.5)])
    (result,) = bd_against(anchor, [anchor, sliver], ["psnr"])
    assert result.rate_change is not None
    assert result.note is not None and "9% of their quality range: unreliable" in result.note


def test_records_survive_a_round_trip_with_nan_as_null(tmp_path: Path) -> None:
    store = RecordStore.open(tmp_path / "r.jsonl", resume=False, overwrite=False)
    record = Record("opus", "d", "x.wav", 6, 80, 6.1, {"pesq_wb": math.nan, "stoi": 0.9})
    store.append(record)
    assert "NaN" not in (tmp_path / "r.jsonl").read_text()
    (loaded,) = store.load()
    assert loaded.key == record.key and math.isnan(loaded.metrics["pesq_wb"])


def test_records_written_before_groups_were_stored_still_load(tmp_path: Path) -> None:
    old = {"codec": "opus", "description": "d", "item": "x.wav", "quality": 6, "rate": 6.1}
    (tmp_path / "r.jsonl").write_text(json.dumps(old) + "\n")
    store = RecordStore.open(tmp_path / "r.jsonl", resume=True, overwrite=False)
    (loaded,) = store.load()
    assert loaded.group is None and loaded.rate == 6.1
    store.append(Record("opus", "d", "y.wav", 6, group="wideband"))
    assert [r.group for r in store.load()] == [None, "wideband"]


def test_a_line_cut_short_by_a_crash_is_dropped(tmp_path: Path) -> None:
    store = RecordStore.open(tmp_path / "r.jsonl", resume=False, overwrite=False)
    store.append(Record("jpeg", "d", "a.png", 10, 8, 0.1))
    with (tmp_path / "r.jsonl").open("a") as stream:
        stream.write('{"codec": "jp')
    assert [r.item for r in store.load()] == ["a.png"]


def test_earlier_results_are_kept_only_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    RecordStore.open(path, resume=False, overwrite=False).append(Record("j", "d", "a", 1))
    with pytest.raises(UsageError, match="--resume"):
        RecordStore.open(path, resume=False, overwrite=False)
    assert len(RecordStore.open(path, resume=True, overwrite=False).load()) == 1
    assert RecordStore.open(path, resume=False, overwrite=True).load() == []


def test_speed_per_second_of_audio_is_pooled_over_the_items(tmp_path: Path) -> None:
    """2 s and 8 s clips encoded in 1 s and 3 s, decoded in 0.1 s and 0.4 s: the encoder
    needs 0.4 s per second of audio and the decoder runs at 20 times real time."""
    timed = [
        Record("opus", "d", item, 6, 100, 6.0, {"stoi": 0.9}, encode, decode, size=size)
        for item, size, encode, decode in (("a.wav", 2.0, 1.0, 0.1), ("b.wav", 8.0, 3.0, 0.4))
    ]
    (point,) = summarize(timed, "opus", "d", [6]).points
    assert point.encode_seconds_per_unit == pytest.approx(0.4)
    assert point.decode_units_per_second == pytest.approx(20.0)
    curves = [summarize(timed, "opus", "d", [6])]
    headers, rows = results_table(curves, "kbps", ["stoi"], size_unit="s")
    assert headers[-3:-1] == ["enc s/s", "dec s/s"] and rows[0][-3:-1] == ["0.4", "20"]
    report = BenchReport(
        "speech", "kbps", ["stoi"], ["a.wav", "b.wav"], timed, curves, {}, None, []
    )
    report.size_unit = "s"
    write_outputs(report, tmp_path)
    results = json.loads((tmp_path / "speech-opus.json").read_text())
    assert results["size_unit"] == "s"
    assert results["results"]["decoding_units_per_second"] == pytest.approx([20.0])
    with (tmp_path / "speech-mean.csv").open() as stream:
        (mean,) = csv.DictReader(stream)
    assert float(mean["encode_s_per_s"]) == pytest.approx(0.4)


def test_without_a_size_unit_speed_is_per_item_only() -> None:
    (point,) = summarize(records("jpeg", 0.0), "jpeg", "jpeg for tests", [10]).points
    assert point.encode_seconds_per_unit is None and point.decode_units_per_second is None
    headers, _ = results_table([], "bpp", ["psnr"])
    assert not any("/s" in header for header in headers)

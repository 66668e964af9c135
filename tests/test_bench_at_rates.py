"""Quality at the anchor's rates: each codec's metrics interpolated linearly in log-rate
at every point of the anchor's curve, with "below"/"above" where its sweep does not
reach, never extrapolated; and how that table is written beside CompressAI's layout."""

from __future__ import annotations

import math

import pytest

from unicomp.bench.at_rates import ABOVE, BELOW, AtRate, interpolate, quality_at_anchor_rates
from unicomp.bench.export import compressai_json
from unicomp.bench.report import BenchReport
from unicomp.bench.summary import Curve, Point
from unicomp.bench.tables import at_rates_table


def curve(codec: str, points: list[tuple[float, float, float]]) -> Curve:
    """A curve of (rate, psnr, ms_ssim) points, settings numbered from 1."""
    return Curve(
        codec,
        f"{codec} for tests",
        [
            Point(i, 2, rate, {"psnr": psnr, "ms_ssim": ssim}, 0.1, 0.01, None, None)
            for i, (rate, psnr, ssim) in enumerate(points, start=1)
        ],
        [],
    )


ANCHOR = curve("unicomp", [(0.05, 20.0, 0.80), (0.1, 24.0, 0.85), (0.2, 27.0, 0.90)])
ANCHOR_HIGH = curve("unicomp", [(0.2, 27.0, 0.90), (1.6, 38.0, 0.99)])
#: Rates a factor 4 apart: the anchor's 0.2 sits half-way in log-rate.
JPEG = curve("jpeg", [(0.1, 30.0, 0.90), (0.4, 34.0, 0.94), (0.8, 36.0, 0.96)])


def results_for(anchor: Curve, *others: Curve) -> dict[tuple[str, int], AtRate]:
    rows = quality_at_anchor_rates(anchor, [anchor, *others], ["psnr", "ms_ssim"])
    return {(r.codec, int(r.setting)): r for r in rows}


def test_a_rate_half_way_in_log_rate_gets_the_mean_of_the_two_points_around_it() -> None:
    at = results_for(ANCHOR, JPEG)[("jpeg", 3)]
    assert at.rate == 0.2 and at.outside is None
    assert at.metrics["psnr"] == pytest.approx(32.0)
    assert at.metrics["ms_ssim"] == pytest.approx(0.92)


def test_interpolation_is_linear_in_log_rate_not_in_rate() -> None:
    # 0.2 is a third of the way from 0.1 to 0.4 in rate, but half-way in log-rate
    assert interpolate([0.1, 0.4], [30.0, 34.0], 0.2) == pytest.approx(32.0)
    assert interpolate([0.1, 1.0], [0.0, 1.0], 10**-0.75) == pytest.approx(0.25)


def test_a_rate_equal_to_the_lowest_measured_one_is_that_measurement() -> None:
    at = results_for(ANCHOR, JPEG)[("jpeg", 2)]
    assert at.outside is None
    assert at.metrics == {"psnr": 30.0, "ms_ssim": 0.90}


def test_below_the_lowest_rate_is_marked_with_that_rate_and_no_values() -> None:
    at = results_for(ANCHOR, JPEG)[("jpeg", 1)]
    assert (at.outside, at.limit, at.metrics) == (BELOW, 0.1, {})


def test_above_the_highest_rate_is_marked_with_that_rate_and_no_values() -> None:
    at = results_for(ANCHOR_HIGH, JPEG)[("jpeg", 2)]
    assert (at.outside, at.limit, at.metrics) == (ABOVE, 0.8, {})


def test_each_anchor_point_lists_the_anchor_as_measured_then_the_others() -> None:
    rows = quality_at_anchor_rates(ANCHOR, [JPEG, ANCHOR], ["psnr"])
    assert [(r.codec, r.setting) for r in rows] == [
        ("unicomp", 1),
        ("jpeg", 1),
        ("unicomp", 2),
        ("jpeg", 2),
        ("unicomp", 3),
        ("jpeg", 3),
    ]
    assert rows[4].metrics == ANCHOR.points[2].metrics


def test_points_in_any_order_and_a_non_monotone_sweep_are_taken_as_measured() -> None:
    # a setting that spends more bits for less quality is not dropped (no inversion)
    shuffled = curve("webp", [(0.4, 31.0, 0.9), (0.1, 30.0, 0.9), (0.8, 33.0, 0.9)])
    at = results_for(ANCHOR, shuffled)[("webp", 3)]
    assert at.metrics["psnr"] == pytest.approx(30.5)


def test_a_missing_value_next_to_the_rate_gives_nan_not_a_neighbours_value() -> None:
    assert math.isnan(interpolate([0.1, 0.4, 0.8], [30.0, math.nan, 36.0], 0.2))
    assert interpolate([0.1, 0.4, 0.8], [math.nan, 34.0, 36.0], 0.4) == 34.0


def test_a_codec_without_points_is_left_out() -> None:
    empty = Curve("avif", "avif", [], ["a.png at 10: failed"])
    rows = quality_at_anchor_rates(ANCHOR, [ANCHOR, empty], ["psnr"])
    assert {r.codec for r in rows} == {"unicomp"}


def test_the_table_says_below_in_every_metric_cell_and_names_the_lowest_rate() -> None:
    rows = quality_at_anchor_rates(ANCHOR, [ANCHOR, JPEG], ["psnr", "ms_ssim"])
    headers, cells = at_rates_table(rows, "unicomp", "bpp", ["psnr", "ms_ssim"])
    assert headers == ["unicomp setting", "bpp", "codec", "psnr", "ms_ssim", "note"]
    assert cells[0] == ["1", "0.05", "unicomp", "20", "0.8", "measured"]
    assert cells[1] == ["1", "0.05", "jpeg", "below", "below", "below its lowest rate, 0.1 bpp"]
    assert cells[5] == ["3", "0.2", "jpeg", "32", "0.92", "interpolated"]


def test_json_carries_the_table_beside_compressai_results_as_columns() -> None:
    rows = quality_at_anchor_rates(ANCHOR, [ANCHOR, JPEG], ["psnr", "ms_ssim"])
    report = BenchReport(
        modality="image",
        rate_unit="bpp",
        metrics=["psnr", "ms_ssim"],
        items=["a.png", "b.png"],
        records=[],
        curves=[ANCHOR, JPEG],
        unavailable={},
        anchor="unicomp",
        bd=[],
        at_anchor_rates=rows,
    )
    data = compressai_json(JPEG, report)
    assert data["results"]["bpp"] == [0.1, 0.4, 0.8]
    table = data["at_anchor_rates"]
    assert table["anchor"] == "unicomp" and table["anchor_quality"] == [1, 2, 3]
    assert table["bpp"] == [0.05, 0.1, 0.2]
    assert table["psnr"][1:] == pytest.approx([30.0, 32.0]) and math.isnan(table["psnr"][0])
    assert table["psnr-rgb"] is table["psnr"] and "ms-ssim" in table
    assert table["outside"] == [BELOW, None, None]
    assert table["limit"] == [0.1, None, None]

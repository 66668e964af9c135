"""Bjøntegaard deltas: the published JCT-VC examples, and the cases with exact answers.

The worked examples are the two curve pairs of JCTVC-E137 (Geneva, 2011; the BD-rate
spreadsheet contribution, http://phenix.it-sudparis.eu/jct/doc_end_user/documents/
5_Geneva/wg11/JCTVC-E137-v1.zip), as reproduced with the spreadsheet's results in
Netflix VMAF's ``python/test/bd_rate_calculator_test.py`` (BDrateCalculatorJCTVCTest),
whose PCHIP implementation was validated against that spreadsheet. Rates in kbit/s,
PSNR in dB; expected BD-rates -0.465215 % and -1.877982 %.
"""

from __future__ import annotations

import pytest

from unicomp.bench.bd import bd_quality, bd_rate
from unicomp.bench.summary import Curve, Point, bd_against
from unicomp.errors import InputError

JCTVC_E137 = [
    (
        [(108048.8736, 43.6471), (61279.976, 40.3953), (33905.6656, 37.247), (18883.6928, 34.2911)],
        [
            (108061.2784, 43.6768),
            (61299.9936, 40.4232),
            (33928.7472, 37.2761),
            (18910.912, 34.3147),
        ],
        -0.465215420752807,
    ),
    (
        [(40433.8848, 37.5761), (7622.7456, 35.3756), (2394.488, 33.8977), (1017.6184, 32.0603)],
        [(40370.12, 37.5982), (7587.0024, 35.4025), (2390.0944, 33.9194), (1017.0984, 32.0822)],
        -1.8779823450567612,
    ),
]

ANCHOR_RATES = [1358.24, 2486.44, 4593.60, 9487.76]
ANCHOR_PSNR = [34.851, 36.845, 38.615, 40.037]


@pytest.mark.parametrize(("anchor", "test", "expected"), JCTVC_E137)
def test_bd_rate_matches_the_jctvc_spreadsheet_examples(
    anchor: list[tuple[float, float]], test: list[tuple[float, float]], expected: float
) -> None:
    rates, psnr = zip(*anchor, strict=True)
    test_rates, test_psnr = zip(*test, strict=True)
    assert bd_rate(rates, psnr, test_rates, test_psnr) == pytest.approx(expected, abs=1e-6)


def test_a_curve_that_costs_a_quarter_more_everywhere_has_bd_rate_plus_25() -> None:
    dearer = [r * 1.25 for r in ANCHOR_RATES]
    assert bd_rate(ANCHOR_RATES, ANCHOR_PSNR, dearer, ANCHOR_PSNR) == pytest.approx(25.0)
    assert bd_rate(dearer, ANCHOR_PSNR, ANCHOR_RATES, ANCHOR_PSNR) == pytest.approx(-20.0)


def test_a_curve_half_a_decibel_higher_has_bd_psnr_plus_half() -> None:
    better = [p + 0.5 for p in ANCHOR_PSNR]
    assert bd_quality(ANCHOR_RATES, ANCHOR_PSNR, ANCHOR_RATES, better) == pytest.approx(0.5)


def test_point_order_does_not_matter() -> None:
    (anchor, test, expected) = JCTVC_E137[0]
    rates, psnr = zip(*reversed(anchor), strict=True)
    test_rates, test_psnr = zip(*test, strict=True)
    assert bd_rate(rates, psnr, test_rates, test_psnr) == pytest.approx(expected, abs=1e-6)


def test_curves_that_do_not_overlap_have_no_bd_rate() -> None:
    higher = [p + 20 for p in ANCHOR_PSNR]
    with pytest.raises(InputError, match="do not overlap in quality"):
        bd_rate(ANCHOR_RATES, ANCHOR_PSNR, ANCHOR_RATES, higher)


@pytest.mark.parametrize(
    ("rates", "psnr", "message"),
    [
        ([1000.0], [30.0], "1 point"),
        ([1000.0, 0.0], [30.0, 31.0], "rate <= 0"),
        ([1000.0, float("nan")], [30.0, 31.0], "non-finite"),
        ([1000.0, 2000.0], [30.0], "2 rates but 1"),
    ],
)
def test_malformed_curves_are_input_errors(
    rates: list[float], psnr: list[float], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        bd_rate(ANCHOR_RATES, ANCHOR_PSNR, rates, psnr)


def test_a_metric_without_finite_values_gets_a_note_not_a_crash() -> None:
    """Flat-region PSNR is NaN on photos with no flat block: BD has nothing to compare."""

    def curve(codec: str, rates: list[float], flat: float) -> Curve:
        points = [
            Point(q, 1, rate, {"psnr": psnr, "flat_psnr": flat}, 0.1, 0.1, None, None)
            for q, (rate, psnr) in enumerate(zip(rates, ANCHOR_PSNR, strict=True))
        ]
        return Curve(codec, codec, points, [])

    anchor = curve("anchor", ANCHOR_RATES, float("nan"))
    other = curve("other", [r * 1.25 for r in ANCHOR_RATES], float("nan"))
    by_metric = {r.metric: r for r in bd_against(anchor, [anchor, other], ["psnr", "flat_psnr"])}
    assert by_metric["psnr"].rate_change == pytest.approx(25.0)
    flat = by_metric["flat_psnr"]
    assert flat.rate_change is None and flat.quality_change is None and flat.note

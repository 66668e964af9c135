"""Per-file rate control: any rate in a model's range, met by every file (at most the
asked rate, at most 3 % under it), at any encoder effort."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from unicomp.core import container
from unicomp.core.blends import STEPS, blend, parse_blend_label
from unicomp.core.coders import PER_CHANNEL
from unicomp.core.entropy import EntropyTables
from unicomp.core.file_rate import TOLERANCE, OutOfReach, climb, fit_weight, rungs
from unicomp.core.points import OperatingPoint, parse_rate
from unicomp.errors import FormatError, InputError, UsageError

NO_INDICES = torch.zeros(1)
SAMPLES = Path(__file__).resolve().parents[1] / "examples" / "samples"


def smooth(weight: float) -> tuple[float, torch.Tensor]:
    """A rate falling smoothly as the weight grows, from 10 at weight 0 towards 1."""
    return 1 + 9 / (1 + weight), NO_INDICES


@pytest.mark.parametrize("target", [1.5, 2.0, 4.0, 9.0])
@pytest.mark.parametrize("start", [0.01, 1.0, 300.0])
def test_the_weight_search_lands_in_the_window_from_any_start(target: float, start: float) -> None:
    fit = fit_weight(smooth, target, start)
    assert (1 - TOLERANCE) * target <= fit.rate <= target
    assert fit.rate == smooth(fit.weight)[0]
    assert fit.trials <= 16


def test_rates_that_jump_over_the_window_give_the_highest_rate_under_the_target() -> None:
    def steps(weight: float) -> tuple[float, torch.Tensor]:
        return (5.0 if weight < 1 else 2.0 if weight < 8 else 1.0), NO_INDICES

    fit = fit_weight(steps, 3.0, 0.5)
    assert fit.rate == 2.0 and 1 <= fit.weight < 8


def test_a_target_above_every_rate_is_met_at_weight_zero() -> None:
    fit = fit_weight(smooth, 20.0, 1.0)
    assert fit.weight == 0.0 and fit.rate == 10.0


def test_a_target_below_every_rate_is_out_of_reach() -> None:
    with pytest.raises(OutOfReach) as raised:
        fit_weight(lambda weight: (4.0 + 1 / (1 + weight), NO_INDICES), 3.0, 1.0)
    assert 4.0 <= raised.value.smallest.rate < 4.001


def _point(label: str | None, weight: float, skew: float = 1.0) -> OperatingPoint:
    tables = EntropyTables.from_counts(torch.tensor([[1.0, skew, skew**2, skew**3]] * 2))
    generator = nn.Linear(3, 2)
    with torch.no_grad():
        generator.weight.fill_(weight)
    return OperatingPoint(label, weight, tables, PER_CHANNEL, tables, generator)


def test_the_rungs_are_the_points_and_the_blends_between_neighbours() -> None:
    points = [_point("2kbps", 0.1), _point("1kbps", 0.5), _point("1.5kbps", 0.3)]
    ladder = rungs(points, 1.2, "kbps", "m")
    assert len(ladder) == 3 + 2 * (STEPS - 1)
    assert ladder[0] == "1kbps" and ladder[STEPS] == "1.5kbps" and ladder[-1] == "2kbps"
    assert ladder[1] == "1kbps+1.5kbps@1" and ladder[-2] == f"1.5kbps+2kbps@{STEPS - 1}"
    for outside in (0.9, 2.1):
        with pytest.raises(UsageError, match="outside what model 'm' codes: 1 to 2 kbps"):
            rungs(points, outside, "kbps", "m")
    with pytest.raises(UsageError, match="no calibrated rates"):
        rungs([_point(None, 0.0)], 1.5, "kbps", "m")


@pytest.mark.parametrize("target", [0.5, 3.0, 3.5, 9.0, 20.0])
def test_the_climb_stops_at_the_highest_rung_that_fits(target: float) -> None:
    rates = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    seen: list[int] = []

    def own_rate(rung: int) -> float:
        seen.append(rung)
        return rates[rung]

    expected = max([i for i, r in enumerate(rates) if r <= target], default=0)
    assert climb(own_rate, len(rates), target) == expected
    assert len(seen) <= 5


def test_a_blend_mixes_generators_tables_and_weights_in_proportion() -> None:
    low, high = _point("1kbps", 0.5, skew=0.5), _point("2kbps", 0.1, skew=0.9)
    halfway = blend(low, high, STEPS // 2)
    assert halfway.label == f"1kbps+2kbps@{STEPS // 2}"
    assert torch.allclose(halfway.generator.weight, torch.full((2, 3), 0.3))
    assert halfway.rate_weight == pytest.approx(math.sqrt(0.5 * 0.1))
    for row, a, b in zip(
        halfway.coder_tables.frequencies,
        low.coder_tables.frequencies,
        high.coder_tables.frequencies,
        strict=True,
    ):
        assert sum(row) == 1 << 16
        assert all(min(x, y) <= v <= max(x, y) + 1 for v, x, y in zip(row, a, b, strict=True))
    again = blend(low, high, STEPS // 2)
    assert again.coder_tables == halfway.coder_tables
    assert torch.equal(again.generator.weight, halfway.generator.weight)
    assert low.generator.weight.eq(0.5).all()  # the points themselves are untouched
    assert parse_blend_label(halfway.label) == ("1kbps", "2kbps", STEPS // 2)
    assert parse_blend_label("1kbps") is None
    with pytest.raises(FormatError, match="not between 1 and"):
        parse_blend_label(f"1kbps+2kbps@{STEPS}")


@pytest.mark.parametrize("effort", ["fast", "default"])
def test_every_file_meets_any_rate_in_the_range(calibrated, effort: str) -> None:
    codec, signals, labels = calibrated
    unit = codec.modality.rate_unit
    high, low = (parse_rate(label, unit) for label in labels)
    assert codec.rate_range == (low, high)
    points: set[str] = set()
    for target in (low, math.sqrt(low * high), 0.8 * high, high):
        for signal in signals:
            data, report = codec.encode(signal, rate=target, effort=effort)
            assert (1 - TOLERANCE) * target <= report.rate <= target
            assert report.rate == codec.modality.rate(8 * len(data), signal)
            assert report.target_rate == target
            assert report.rate_trials >= 1 and report.effort == effort
            assert (report.iterations == 0) == (effort == "fast")
            header = container.unpack(data)[0]
            point = report.operating_point
            assert header.coder == ("rans16ctx" if point == labels[0] else f"rans16ctx:{point}")
            assert codec.decode(data).values.shape == signal.values.shape
            points.add(point)
    assert any("@" in point for point in points)  # blends between the two points


def test_a_blend_named_in_a_header_decodes_only_if_the_model_can_build_it(calibrated) -> None:
    codec, signals, labels = calibrated
    rates = [parse_rate(label, codec.modality.rate_unit) for label in labels]
    data, report = codec.encode(signals[0], rate=math.sqrt(rates[0] * rates[1]))
    header, payload = container.unpack(data)
    assert "@" in header.coder
    low, high = labels[1], labels[0]
    for bad in (f"{low}+{high}@{STEPS}", f"{low}+{low}@3", f"{low}+9bits/sample@3", "a+b@x"):
        forged = container.pack(dataclasses.replace(header, coder=f"rans16ctx:{bad}"), payload)
        with pytest.raises(FormatError):
            codec.decode(forged)


def test_without_a_rate_files_meet_the_default_points_label(calibrated) -> None:
    codec, signals, labels = calibrated
    default = parse_rate(labels[0], codec.modality.rate_unit)
    assert codec.default_rate == default
    for signal in signals:
        rate = codec.encode(signal)[1].rate
        assert (1 - TOLERANCE) * default <= rate <= default


def test_rates_the_model_cannot_meet_are_refused_with_its_range(calibrated) -> None:
    codec, signals, labels = calibrated
    low, high = codec.rate_range
    with pytest.raises(UsageError, match=f"codes: {low:g} to {high:g}"):
        codec.encode(signals[0], rate=1.01 * high)
    with pytest.raises(UsageError, match="not both"):
        codec.encode(signals[0], rate=high, operating_point=labels[0])
    with pytest.raises(UsageError, match="unknown effort 'slow'"):
        codec.encode(signals[0], effort="slow")
    tiny = dataclasses.replace(signals[0], values=signals[0].values[:16])
    with pytest.raises(InputError, match="out of reach for so small a signal"):
        codec.encode(tiny, rate=low)


def test_the_cli_meets_a_rate_between_the_bundled_image_models_points(cli, tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    Image.open(SAMPLES / "fruits.jpg").convert("RGB").crop((0, 0, 256, 192)).save(photo)
    done = cli("compress", str(photo), "--rate", "0.1bpp", "--effort", "fast", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert 0.097 <= report["rate"] <= 0.1 and report["target_rate"] == 0.1
    assert report["effort"] == "fast" and report["iterations"] == 0
    point = report["operating_point"]
    assert point in ("0.06bpp", "0.12bpp") or point.startswith("0.06bpp+0.12bpp@")
    outside = cli("compress", str(photo), "--rate", "0.3bpp", "-o", str(tmp_path / "x.ucz"))
    assert outside.returncode == 2 and "0.03 to 0.25 bpp" in outside.stderr
    icon = tmp_path / "icon.png"
    Image.new("RGB", (16, 16), (90, 140, 200)).save(icon)
    small = cli("compress", str(icon), "--rate", "0.06bpp")
    assert small.returncode == 3 and "out of reach for so small a signal" in small.stderr
    assert not icon.with_suffix(".ucz").exists()

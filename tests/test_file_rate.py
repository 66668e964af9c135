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
from unicomp.core.calibration import calibrate_points, measure
from unicomp.core.checkpoint import load_model
from unicomp.core.codec import Codec
from unicomp.core.coders import PER_CHANNEL
from unicomp.core.entropy import EntropyTables
from unicomp.core.file_rate import (
    TOLERANCE,
    OutOfReach,
    RateFit,
    fit_weight,
    nearest_calibration,
    serving_points,
)
from unicomp.core.points import OperatingPoint, parse_rate
from unicomp.errors import InputError, UsageError

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


def _point(label: str | None, weight: float) -> OperatingPoint:
    tables = EntropyTables.uniform(2, 4)
    return OperatingPoint(label, weight, tables, PER_CHANNEL, tables, nn.Identity())


def test_points_serve_the_range_of_their_labels() -> None:
    points = [_point("2kbps", 0.1), _point("1kbps", 0.5)]
    assert serving_points(points, 1.5, "kbps", "m") == points
    for outside in (0.9, 2.1):
        with pytest.raises(UsageError, match="outside what model 'm' codes: 1 to 2 kbps"):
            serving_points(points, outside, "kbps", "m")
    with pytest.raises(UsageError, match="no calibrated rates"):
        serving_points([_point(None, 0.0)], 1.5, "kbps", "m")


def test_the_point_used_nearest_its_calibrated_weight_wins_and_near_ties_are_kept() -> None:
    low, high = _point("1kbps", 1.0), _point("2kbps", 0.1)

    def fits(low_weight: float, high_weight: float) -> list[tuple[OperatingPoint, RateFit]]:
        return [
            (low, RateFit(low_weight, NO_INDICES, 1.5, 1)),
            (high, RateFit(high_weight, NO_INDICES, 1.5, 1)),
        ]

    # 1.2 times its weight against 30 times: only the first
    assert [p for p, _ in nearest_calibration(fits(1.2, 3.0))] == [low]
    # a factor of 2.5 under against a factor of 3 over: both, nearest first
    assert [p for p, _ in nearest_calibration(fits(0.4, 0.3))] == [low, high]
    # weight 0 is infinitely far from a calibrated weight
    assert [p for p, _ in nearest_calibration(fits(0.0, 2.0))] == [high]


@pytest.fixture(scope="module")
def calibrated(sensor, sensor_model: Path, sensor_data: Path) -> tuple[Codec, list, list[str]]:
    """The trained sensor model with two calibrated points, and the signals it codes."""
    codec = Codec(sensor, load_model(sensor_model, sensor.build_networks))
    signals = [sensor.load(path) for path in sorted(sensor_data.glob("*.csv"))[:6]]
    free = measure(codec, signals, None).rate
    labels = [f"{0.7 * free:.3f}{sensor.rate_unit}", f"{0.4 * free:.3f}{sensor.rate_unit}"]
    codec.model.config = dataclasses.replace(codec.model.config, rates=labels)
    calibrate_points(codec, signals, signals[:3], labels[0], log=lambda _: None)
    return codec, signals, labels


@pytest.mark.parametrize("effort", ["fast", "default"])
def test_every_file_meets_any_rate_in_the_range(calibrated, effort: str) -> None:
    codec, signals, labels = calibrated
    unit = codec.modality.rate_unit
    high, low = (parse_rate(label, unit) for label in labels)
    assert codec.rate_range == (low, high)
    for target in (low, math.sqrt(low * high), 0.8 * high, high):
        for signal in signals:
            data, report = codec.encode(signal, rate=target, effort=effort)
            assert (1 - TOLERANCE) * target <= report.rate <= target
            assert report.rate == codec.modality.rate(8 * len(data), signal)
            assert report.target_rate == target and report.operating_point in labels
            assert report.rate_trials >= 1 and report.effort == effort
            assert (report.iterations == 0) == (effort == "fast")
            header = container.unpack(data)[0]
            assert header.coder in ("rans16ctx", f"rans16ctx:{labels[1]}")
            assert codec.decode(data).values.shape == signal.values.shape


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
    assert report["operating_point"] in ("0.06bpp", "0.12bpp", "0.25bpp")
    outside = cli("compress", str(photo), "--rate", "0.3bpp", "-o", str(tmp_path / "x.ucz"))
    assert outside.returncode == 2 and "0.06 to 0.25 bpp" in outside.stderr
    icon = tmp_path / "icon.png"
    Image.new("RGB", (16, 16), (90, 140, 200)).save(icon)
    small = cli("compress", str(icon), "--rate", "0.06bpp")
    assert small.returncode == 3 and "out of reach for so small a signal" in small.stderr
    assert not icon.with_suffix(".ucz").exists()

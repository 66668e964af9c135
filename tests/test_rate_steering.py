"""Steering a variable-rate training's points to their target rates."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import torch
from conftest import tiny_config

from unicomp.core.calibration import measure
from unicomp.core.checkpoint import load_model, load_state
from unicomp.core.codec import Codec
from unicomp.core.rate_steering import RateSteering
from unicomp.core.trainer import STATE_NAME, PointGains, train
from unicomp.errors import UsageError


def test_points_over_their_share_get_a_smaller_scale_and_overspending_a_larger_weight() -> None:
    steering = RateSteering(torch.tensor([1.0, 2.0, 0.5]))
    log_scale = steering.initial_log_scales()
    assert torch.allclose(log_scale.exp(), steering.targets)  # their geometric mean is 1
    start = log_scale.clone()
    # Every point spends twice its target, point 2 eight times.
    for _ in range(50):
        steering.update(torch.tensor([4.0, 8.0, 8.0]), torch.tensor([2.0, 2.0, 2.0]), log_scale)
    assert float(steering.multiplier()) > 1.0
    moved = log_scale - start
    assert moved[2] < 0 < moved[0] and torch.isclose(moved[0], moved[1])
    assert abs(float(log_scale.sum())) < 1e-5  # centered: no drift against the encoder


def test_steering_waits_until_every_point_was_seen() -> None:
    steering = RateSteering(torch.tensor([1.0, 2.0]))
    log_scale = torch.zeros(2)
    steering.update(torch.tensor([5.0, 0.0]), torch.tensor([1.0, 0.0]), log_scale)
    assert float(steering.log_multiplier) == 0.0 and log_scale.eq(0).all()
    assert float(steering.average[0]) == 5.0  # a first value is taken as it is


def test_a_steered_points_level_is_its_scale_whatever_the_learned_gains() -> None:
    gains = PointGains(torch.ones(3), channels=4, log_scale=torch.tensor([-1.0, 0.0, 1.0]))
    with torch.no_grad():
        gains.log_latent.copy_(torch.randn(3, 4) * 3)
    logs = gains.latent(torch.arange(3)).log()
    assert torch.allclose(logs.mean(dim=1), torch.tensor([-1.0, 0.0, 1.0]), atol=1e-5)
    assert not torch.allclose(logs[0], torch.full((4,), -1.0))  # channels still differ


def test_targets_need_one_per_weight_and_positive(sensor) -> None:
    with pytest.raises(UsageError, match="one target per rate weight"):
        tiny_config(sensor, rate_weights=[0.01, 0.01], rate_targets=[1.0])
    with pytest.raises(UsageError, match="positive"):
        tiny_config(sensor, rate_weights=[0.01, 0.01], rate_targets=[1.0, 0.0])


def test_a_steered_run_spreads_points_trained_at_equal_weights(
    sensor, sensor_data: Path, tmp_path: Path
) -> None:
    """At equal weights only the steering can set the points apart: the point steered to
    four times the other's rate spends more bits in training and codes larger files."""
    config = tiny_config(sensor, rate_weights=[0.01, 0.01], rate_targets=[0.5, 2.0])
    card = train(sensor, config, sensor_data, tmp_path)
    assert card is not None
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").open()]
    last = [line for line in lines if line["phase"] == "hard"][-10:]
    low, high = (statistics.mean(line[f"bits_{i}"] for line in last) for i in (0, 1))
    assert high > 1.5 * low
    assert last[-1]["rate_multiplier"] > 1.0  # both started above their targets
    model = load_model(card, sensor.build_networks)
    codec = Codec(sensor, model)
    signals = [sensor.load(path) for path in sorted(sensor_data.glob("*.csv"))[:4]]
    low_rate, high_rate = (measure(codec, signals, p.label).rate for p in model.points)
    assert high_rate > 1.3 * low_rate


def test_a_run_resumed_with_new_targets_steers_to_them(
    sensor, sensor_data: Path, tmp_path: Path
) -> None:
    """A recipe may move its targets mid-run (image-v2's lowest point); the controllers'
    state carries over, the targets come from the config."""
    train(
        sensor,
        tiny_config(sensor, rate_weights=[0.01, 0.01], rate_targets=[0.5, 2.0]),
        sensor_data,
        tmp_path,
        stop_at=380,
    )
    before = load_state(tmp_path / STATE_NAME)["autoencoder"]
    moved = tiny_config(sensor, rate_weights=[0.01, 0.01], rate_targets=[0.3, 2.0])
    train(sensor, moved, sensor_data, tmp_path, resume=True, stop_at=381)
    after = load_state(tmp_path / STATE_NAME)["autoencoder"]
    assert torch.equal(before["steering.targets"], torch.tensor([0.5, 2.0]))
    assert torch.equal(after["steering.targets"], torch.tensor([0.3, 2.0]))
    assert before["steering.average"].gt(0).all()  # the averages went on from there
    assert torch.allclose(after["steering.average"], before["steering.average"], rtol=0.2)

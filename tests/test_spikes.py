"""Loss spikes (core/spikes.py): a diverging run rolls back to its last checkpoint, past
the batches that led there, and gives up with a clear error when it keeps diverging."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import tiny_config

from unicomp.core.checkpoint import load_state
from unicomp.core.data import CropDataset
from unicomp.core.spikes import SPIKE_FACTOR, WARMUP, SpikeDetector
from unicomp.core.trainer import LOG_NAME, MAX_ROLLBACKS, STATE_NAME, StepReport, Trainer
from unicomp.errors import TrainingError

#: Float phase only until step 45: the detector is past its warm-up from step 20.
RUN = {
    "float_steps": 45,
    "soft_steps": 5,
    "hard_steps": 5,
    "adversarial_start": 100,
    "checkpoint_every": 10,
    "log_every": 1,
    "batch_size": 4,
}
WRECKED_AT = 35


def _noisy(detector: SpikeDetector, steps: int, level: float = 1.0) -> None:
    for step in range(steps):
        detector.update(level * (1.0 + 0.3 * math.sin(step)))  # ±30 % batch to batch


def test_noise_is_calm_and_a_jump_is_caught_within_a_step() -> None:
    detector = SpikeDetector()
    _noisy(detector, 200)
    assert detector.calm and not detector.diverged
    detector.update(2.4)  # the worst step of the healthy runs so far, relative to the average
    assert not detector.diverged
    detector.update(40.0)
    assert detector.diverged and not detector.calm


def test_a_build_up_postpones_checkpoints_before_it_counts_as_divergence() -> None:
    detector = SpikeDetector()
    _noisy(detector, 200)
    detector.update(4.0)
    assert not detector.calm and not detector.diverged


def test_a_non_finite_loss_diverges_and_a_reset_starts_a_warm_up() -> None:
    detector = SpikeDetector()
    _noisy(detector, 50)
    detector.update(math.nan)
    assert detector.diverged
    detector.reset()
    detector.update(1.0)
    for _ in range(WARMUP - 2):
        detector.update(10 * SPIKE_FACTOR)  # a new phase's scale is not judged yet
    assert not detector.diverged


def test_the_averages_round_trip() -> None:
    detector = SpikeDetector()
    _noisy(detector, 30)
    restored = SpikeDetector()
    restored.load_state_dict(detector.state_dict())
    assert restored.state_dict() == detector.state_dict()


def _trainer(sensor, sensor_data: Path, out: Path) -> Trainer:
    config = tiny_config(sensor, **RUN)
    return Trainer(
        sensor, config, CropDataset.from_folder(sensor, sensor_data, config.train.crop), out
    )


def _wreck_generator(trainer: Trainer, times: float) -> None:
    """What a diverging GAN step does: the generator's weights blow up."""
    with torch.no_grad():
        for parameter in trainer.autoencoder.generator.parameters():
            parameter.mul_(times)


def test_a_wrecked_run_rolls_back_and_trains_on_past_the_batches_that_led_there(
    sensor, sensor_data: Path, tmp_path: Path
) -> None:
    trainer = _trainer(sensor, sensor_data, tmp_path)
    wrecked = []

    def wreck_once(report: StepReport) -> None:
        if report.step == WRECKED_AT and not wrecked:
            wrecked.append(report.losses["reconstruction"])
            _wreck_generator(trainer, 100.0)

    assert trainer.run(on_step=wreck_once) is not None
    lines = [json.loads(line) for line in (tmp_path / LOG_NAME).read_text().splitlines()]
    rollbacks = [line for line in lines if line.get("event") == "rollback"]
    assert rollbacks == [{"step": WRECKED_AT + 1, "event": "rollback", "to": 30, "skipped": 6}]
    # Steps 31-36 ran twice, the second time on the batches after the first pass's.
    steps = [line["step"] for line in lines if "event" not in line]
    assert steps.count(31) == 2 and steps[-1] == 55
    state = load_state(tmp_path / STATE_NAME)
    assert state["step"] == 55 and state["skipped"] == 6
    # The wreck was undone, not trained through: the loss is back at its level before it.
    last = [line for line in lines if line["step"] == WRECKED_AT and "event" not in line][-1]
    assert last["reconstruction"] < 3 * wrecked[0]


def test_a_run_that_keeps_diverging_gives_up_with_a_clear_error(
    sensor, sensor_data: Path, tmp_path: Path
) -> None:
    trainer = _trainer(sensor, sensor_data, tmp_path)

    def wreck_every_time(report: StepReport) -> None:
        if report.step == WRECKED_AT:
            _wreck_generator(trainer, 100.0)

    with pytest.raises(TrainingError, match=f"diverged {MAX_ROLLBACKS + 1} times .* step 30"):
        trainer.run(on_step=wreck_every_time)
    lines = [json.loads(line) for line in (tmp_path / LOG_NAME).read_text().splitlines()]
    assert sum(line.get("event") == "rollback" for line in lines) == MAX_ROLLBACKS

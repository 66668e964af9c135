"""The command line that trains and releases default models (unicomp/release/recipe.py),
driven with a short sensor recipe: train, resume, export with calibrated operating points."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import tiny_config
from safetensors.torch import load_file
from unicomp_sensor.modality import SensorModality

from unicomp.core.calibration import measure
from unicomp.core.checkpoint import load_model
from unicomp.core.codec import Codec
from unicomp.core.config import ModelConfig, TrainConfig
from unicomp.core.data import CropDataset, find_files
from unicomp.core.points import parse_rate
from unicomp.release.recipe import Calibration, Recipe, add_rate, main


class ShortSensor(SensorModality):
    """The sensor modality whose default config trains in seconds, with rate labels the
    test sets once it knows what the trained model spends."""

    labels: tuple[str, ...] = ()

    def default_config(self) -> ModelConfig:
        config = tiny_config(SensorModality())
        return dataclasses.replace(config, rates=list(self.labels))


def sensor_recipe(modality: ShortSensor) -> Recipe:
    def training_set(folder: Path, train: TrainConfig) -> tuple[CropDataset, dict[str, Any]]:
        tensors = [modality.analysis(modality.load(p))[0] for p in find_files(modality, folder)]
        return CropDataset(tensors, train.crop), {"items": len(tensors)}

    def calibration(folder: Path) -> Calibration:
        signals = [modality.load(p) for p in find_files(modality, folder)][:6]
        return Calibration(signals, signals[:3], f"6 readings of {folder}")

    return Recipe(
        modality=modality,
        script="tests/sensor_recipe.py",
        default_rate="",  # set with the labels
        training_set=training_set,
        calibration=calibration,
        rate_key="mean_rate",
        tuning_steps=100,
    )


def test_train_resume_and_export_a_default_model(
    sensor_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    modality = ShortSensor()
    recipe = sensor_recipe(modality)
    run, weights = tmp_path / "run", tmp_path / "weights"
    common = ["--data", str(sensor_data), "--out", str(run)]

    assert main(recipe, [*common, "--stop-at", "400"]) == 0
    assert json.loads((run / "state.json").read_text())["step"] == 400
    assert main(recipe, [*common, "--resume"]) == 0
    assert "resumed at step 400" in capsys.readouterr().out
    card = json.loads((run / card_name(modality)).read_text())
    assert card["training"]["steps"] == 500
    assert card["training"]["command"].startswith("python tests/sensor_recipe.py")
    assert card["data"] == {"items": 16}

    trained = Codec(modality, load_model(run / card_name(modality), modality.build_networks))
    free = measure(trained, recipe.calibration(sensor_data).signals[:3], None).rate
    unit = modality.rate_unit
    # Labels well above the lowest rate the model reaches (0.46 of the free one, with
    # oneDNN at SSE4.1), so that kernels rounding differently cannot put them out of reach.
    modality.labels = (f"{0.75 * free:.3f}{unit}", f"{0.6 * free:.3f}{unit}")
    labels = modality.labels
    recipe = dataclasses.replace(recipe, default_rate=labels[0])
    assert main(recipe, [*common, "--export", "--weights", str(weights)]) == 0

    released = json.loads((weights / card_name(modality)).read_text())
    calibration = released["calibration"]
    assert calibration["command"].endswith(f"--export --weights {weights}")
    assert calibration["data"] == f"6 readings of {sensor_data}"
    tuning = calibration["generator_tuning"]
    assert tuning["steps"] == 100 and tuning["crops"] == "16 training signals, crops of [256]"
    # A point keeps a tuned generator only where tuning lowered its distortion; every
    # tuned point but the default stores its own.
    assert tuning["tuned_points"] and set(tuning["tuned_points"]) <= set(labels)
    own = [b["label"] for b in released["operating_points"] if b["generator"] != "generator"]
    assert set(tuning["tuned_points"]) - {labels[0]} <= set(own) <= set(labels[1:])
    # Released weights are float16 values, stored as such (half the size).
    stored = load_file(weights / released["weights"]["file"])
    networks = [t for key, t in stored.items() if not key.startswith("quantizer.")]
    assert {t.dtype for t in networks if t.is_floating_point()} == {torch.float16}
    for label in modality.labels:
        assert 0.8 * parse_rate(label, unit) <= calibration["mean_rate"][label]
        assert calibration["mean_rate"][label] <= parse_rate(label, unit)

    # A rate below the lowest, added to the released model as a new one.
    lower = f"{0.4 * free:.3f}{unit}"
    plus = add_rate(
        recipe,
        weights / card_name(modality),
        lower,
        labels[1],
        "sensor-plus",
        sensor_data,
        tmp_path / "plus",
        "python benchmarks/add_rate.py",
    )
    added = json.loads(plus.read_text())
    assert added["name"] == "sensor-plus" and added["config"]["rates"] == [lower, *labels[::-1]]
    record = added["added_rate"][lower]
    assert record["from"] == {
        "model": card_name(modality)[: -len(".json")],
        "sha256": released["weights"]["sha256"],
        "point": labels[1],
    }
    assert 0.8 * parse_rate(lower, unit) <= record["mean_rate"] <= parse_rate(lower, unit)
    # The released points are untouched: the same weights, tables and gains.
    before = {p["label"]: p for p in released["operating_points"]}
    for point in added["operating_points"]:
        if point["label"] != lower:
            assert point["search_tables"] == before[point["label"]]["search_tables"]
    new_weights = load_file(plus.parent / added["weights"]["file"])
    for key, tensor in stored.items():
        assert torch.equal(new_weights[key], tensor)
    codec = Codec(modality, load_model(plus, modality.build_networks))
    signal = recipe.calibration(sensor_data).signals[0]
    assert codec.encode(signal, rate=parse_rate(lower, unit))[1].rate <= parse_rate(lower, unit)


def test_export_refuses_a_model_without_index_statistics(sensor_data: Path, tmp_path: Path) -> None:
    recipe = sensor_recipe(ShortSensor())
    common = ["--data", str(sensor_data), "--out", str(tmp_path)]
    assert main(recipe, [*common, "--stop-at", "300"]) == 0
    with pytest.raises(SystemExit, match="no index statistics before 350"):
        main(recipe, [*common, "--export", "--weights", str(tmp_path / "weights")])


def card_name(modality: SensorModality) -> str:
    return f"{modality.default_config().name}.json"

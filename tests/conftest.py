"""Shared fixtures: the example sensor modality stands in for "any third-party modality".

Core tests use it through the same plugin hooks a real installation would, with a tiny
model trained once per session (seconds on a CPU).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "unicomp-plugin-example"
sys.path.insert(0, str(EXAMPLE / "src"))

from unicomp_sensor import plugin as sensor_plugin  # noqa: E402
from unicomp_sensor.modality import SensorModality  # noqa: E402
from unicomp_sensor.synthetic import synthetic_reading  # noqa: E402

from unicomp.core.config import ModelConfig, merge  # noqa: E402
from unicomp.core.trainer import train  # noqa: E402
from unicomp.plugins.manager import build_registry  # noqa: E402

torch.set_num_threads(1)  # small models on a shared 2-core machine: one thread is fastest


def write_csv(path: Path, values: np.ndarray) -> Path:
    path.write_text("value\n" + "\n".join(f"{v:.9g}" for v in values) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def sensor() -> SensorModality:
    return SensorModality()


@pytest.fixture(scope="session")
def registry():
    """Built-ins plus the sensor plugin registered directly, no entry points."""
    return build_registry(autoload=False, extra_plugins=[sensor_plugin])


@pytest.fixture(scope="session")
def sensor_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sensor-data")
    rng = np.random.default_rng(0)
    for index in range(16):
        write_csv(folder / f"reading{index:02d}.csv", synthetic_reading(rng, 2000))
    return folder


def tiny_config(sensor: SensorModality, **train: object) -> ModelConfig:
    """The sensor defaults, shortened for tests."""
    overrides = {
        "float_steps": 200,
        "soft_steps": 150,
        "hard_steps": 150,
        "adversarial_start": 200,
        "checkpoint_every": 100,
        **train,
    }
    return merge(sensor.default_config(), {"train": overrides})


@pytest.fixture(scope="session")
def sensor_model(
    sensor: SensorModality, sensor_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Card path of a sensor model trained through all three phases."""
    out = tmp_path_factory.mktemp("sensor-model")
    card = train(sensor, tiny_config(sensor), sensor_data, out)
    assert card is not None
    return card


@pytest.fixture(scope="session")
def installed_example(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The example plugin pip-installed into a scratch folder; env that makes it visible."""
    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("example") / EXAMPLE.name
    # Build from a copy: setuptools leaves build artefacts beside the sources.
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("*.egg-info", "build"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(target), env.get("PYTHONPATH", "")])
    env.pop("UNICOMP_DISABLE_PLUGIN_AUTOLOAD", None)
    return env


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real console script, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "unicomp", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )

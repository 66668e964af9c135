"""Shared fixtures: the example sensor modality stands in for "any third-party modality".

Core tests use it through the same plugin hooks a real installation would, with a tiny
model trained once per session (seconds on a CPU).
"""

from __future__ import annotations

# First: importing unicomp pins the CPU kernels (core/kernels.py) before numpy and torch load.
import unicomp  # noqa: F401

# isort: split
import dataclasses
import os
import shutil
import struct
import subprocess
import sys
import zlib
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

from unicomp.cli import main  # noqa: E402
from unicomp.core.calibration import calibrate_points, measure  # noqa: E402
from unicomp.core.checkpoint import Model, load_model, save_model  # noqa: E402
from unicomp.core.codec import Codec  # noqa: E402
from unicomp.core.coders import CONTEXT, PER_CHANNEL  # noqa: E402
from unicomp.core.config import ModelConfig, merge  # noqa: E402
from unicomp.core.context_coding import context_count  # noqa: E402
from unicomp.core.entropy import EntropyTables  # noqa: E402
from unicomp.core.points import OperatingPoint  # noqa: E402
from unicomp.core.quantizer import Quantizer  # noqa: E402
from unicomp.core.trainer import train  # noqa: E402
from unicomp.modalities.base import Modality  # noqa: E402
from unicomp.plugins.manager import build_registry, get_registry  # noqa: E402

torch.set_num_threads(1)  # small models on a shared 2-core machine: one thread is fastest


def write_csv(path: Path, values: np.ndarray) -> Path:
    path.write_text("value\n" + "\n".join(f"{v:.9g}" for v in values) + "\n", encoding="utf-8")
    return path


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR (with a correct CRC) declares ``width x height``; no real data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


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


def random_model(modality: Modality, folder: Path, seed: int = 0) -> Path:
    """Card path of a model of ``modality``'s default config with random weights.

    Decoding up to the generator needs only the config, centers and entropy tables, so
    untrained weights are enough there. The tables are skewed like trained ones, one
    set per operating point, so that every coder a header may name exists: the
    operating points code with context tables, the default with per-channel ones.
    """
    torch.manual_seed(seed)
    config = modality.default_config()
    encoder, generator, _ = modality.build_networks(config.network)
    channels, symbols = config.network["latent_channels"], config.quantizer.num_centers

    def tables(rows: int) -> EntropyTables:
        return EntropyTables.from_counts(torch.rand(rows, symbols, dtype=torch.float64) ** 4)

    default = tables(channels)
    points = [OperatingPoint(None, 0.0, default, PER_CHANNEL, default, generator)]
    rows = channels * context_count(symbols, len(config.train.crop))
    for label in config.rates:
        points.append(
            OperatingPoint(label, 0.0, tables(channels), CONTEXT, tables(rows), generator)
        )
    model = Model(config, encoder, Quantizer(config.quantizer), points)
    return save_model(model, folder)


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


@pytest.fixture(scope="module")
def cli_env(installed_example: dict[str, str], sensor_model: Path) -> dict[str, str]:
    """Example plugin importable through its entry point, the test model on the search path."""
    return {**installed_example, "UNICOMP_MODEL_PATH": str(sensor_model.parent)}


@pytest.fixture()
def cli(cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    """Run the CLI in this process (fast), seeing what a user with the plugin installed sees."""
    for folder in reversed(cli_env["PYTHONPATH"].split(os.pathsep)):
        if folder:
            monkeypatch.syspath_prepend(folder)
    monkeypatch.setenv("UNICOMP_MODEL_PATH", cli_env["UNICOMP_MODEL_PATH"])
    monkeypatch.delenv("UNICOMP_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    get_registry.cache_clear()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        monkeypatch.setattr(sys, "argv", ["unicomp", *args])
        with pytest.raises(SystemExit) as exit_info:
            main()
        captured = capsys.readouterr()
        code = exit_info.value.code or 0
        return subprocess.CompletedProcess(args, int(code), captured.out, captured.err)

    yield run
    get_registry.cache_clear()


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

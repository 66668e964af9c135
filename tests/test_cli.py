"""The unicomp command end to end, with the example plugin installed as a user would."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli, write_csv
from unicomp_sensor.synthetic import synthetic_reading

from unicomp import cli as cli_module
from unicomp.cli import main
from unicomp.core.checkpoint import read_card
from unicomp.errors import InputError


@pytest.fixture()
def reading(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "reading.csv", synthetic_reading(np.random.default_rng(7), 1500))


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == "unicomp 0.1.0"


def test_compress_then_decompress_round_trip(cli_env, reading: Path, sensor) -> None:
    compressed = run_cli("compress", str(reading), "--metrics", "--json", env=cli_env)
    assert compressed.returncode == 0, compressed.stderr
    report = json.loads(compressed.stdout)
    ucz = reading.with_suffix(".ucz")
    assert report["output"] == str(ucz)
    assert report["total_bits"] == 8 * ucz.stat().st_size
    assert report["total_bits"] == (
        report["header_bits"] + report["payload_bits"] + report["refinement_bits"]
    )
    assert report["rate"] == pytest.approx(report["total_bits"] / 1500)
    assert report["payload_bits"] <= 1.02 * report["estimated_bits"] + 64  # rANS flush
    assert report["metrics"]["snr_db"] > 15

    restored = reading.with_name("restored.csv")
    decompressed = run_cli("decompress", str(ucz), "-o", str(restored), env=cli_env)
    assert decompressed.returncode == 0, decompressed.stderr
    original, decoded = sensor.load(reading), sensor.load(restored)
    assert decoded.values.shape == original.values.shape
    assert sensor.metrics(original, decoded)["snr_db"] == pytest.approx(
        report["metrics"]["snr_db"], abs=0.01
    )


def test_admm_search_improves_on_the_encoder_output(cli, reading: Path) -> None:
    def snr(iterations: str, name: str) -> float:
        result = cli(
            "compress",
            str(reading),
            "-o",
            str(reading.with_name(name)),
            "--admm-iters",
            iterations,
            "--metrics",
            "--json",
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["metrics"]["snr_db"]

    assert snr("30", "searched.ucz") > snr("0", "plain.ucz") + 0.5


def test_compressing_twice_gives_identical_bytes(cli, reading: Path) -> None:
    for name in ("a.ucz", "b.ucz"):
        assert (
            cli("compress", str(reading), "-o", str(reading.with_name(name)), "-q").returncode == 0
        )
    assert reading.with_name("a.ucz").read_bytes() == reading.with_name("b.ucz").read_bytes()


def test_info_shows_the_header(cli, reading: Path, sensor_model: Path) -> None:
    cli("compress", str(reading), "-q")
    result = cli("info", str(reading.with_suffix(".ucz")), "--json")
    info = json.loads(result.stdout)
    assert info["format_version"] == 3
    assert info["modality"] == "sensor"
    assert info["model"] == "sensor-default"
    assert info["weights_digest"] == read_card(sensor_model)["weights"]["sha256"][:16]
    assert info["side_info"]["length"] == 1500
    assert info["bytes"] == info["payload_bytes"] + info["overhead_bytes"]
    assert info["refinement_bytes"] == 0  # the test model carries no correction layer


def test_existing_output_is_kept_without_force(cli, reading: Path) -> None:
    target = reading.with_suffix(".ucz")
    target.write_bytes(b"precious")
    refused = cli("compress", str(reading))
    assert refused.returncode == 2
    assert "already exists" in refused.stderr and "--force" in refused.stderr
    assert target.read_bytes() == b"precious"
    assert cli("compress", str(reading), "--force", "-q").returncode == 0
    assert target.read_bytes()[:4] == b"UCZ1"


def test_a_file_of_another_model_is_a_model_error(
    cli, cli_env, reading: Path, tmp_path: Path
) -> None:
    cli("compress", str(reading), "-q")
    card = read_card(Path(cli_env["UNICOMP_MODEL_PATH"]) / "sensor-default.json")
    other = tmp_path / "other"
    other.mkdir()
    weights = Path(cli_env["UNICOMP_MODEL_PATH"]) / card["weights"]["file"]
    tampered = bytearray(weights.read_bytes())
    tampered[-1] ^= 1
    (other / "sensor-default.safetensors").write_bytes(bytes(tampered))
    (other / "sensor-default.json").write_text(json.dumps(card))
    result = cli(
        "decompress",
        str(reading.with_suffix(".ucz")),
        "--model",
        str(other / "sensor-default.json"),
        "-o",
        str(tmp_path / "x.csv"),
    )
    assert result.returncode == 5
    assert "do not match the sha256" in result.stderr


@pytest.mark.parametrize(
    ("make", "code", "message"),
    [
        (lambda d: d / "missing.csv", 3, "does not exist"),
        (lambda d: d, 2, "is a folder: name the output folder with -o"),
        (lambda d: _write(d / "empty.csv", b""), 3, "0 samples"),
        (lambda d: _write(d / "words.csv", b"value\nhello\n"), 3, "not a number"),
        (lambda d: _write(d / "notes.txt", b"1\n2\n"), 3, "no modality reads .txt"),
    ],
)
def test_bad_inputs_are_one_line_errors(cli, tmp_path: Path, make, code: int, message: str) -> None:
    result = cli("compress", str(make(tmp_path)))
    assert result.returncode == code
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.glob("*.ucz")) and not list(tmp_path.glob(".*part*"))


@pytest.mark.parametrize("cut", [0, 3, 10, -5, -1])
def test_truncated_files_are_format_errors(cli, reading: Path, cut: int) -> None:
    cli("compress", str(reading), "-q")
    ucz = reading.with_suffix(".ucz")
    data = ucz.read_bytes()
    ucz.write_bytes(data[:cut] if cut >= 0 else data[: len(data) + cut])
    result = cli("decompress", str(ucz), "-o", str(reading.with_name("x.csv")))
    assert result.returncode == 4
    assert "Traceback" not in result.stderr
    assert not reading.with_name("x.csv").exists()


def test_output_into_a_missing_folder_is_refused(cli, reading: Path) -> None:
    result = cli("compress", str(reading), "-o", str(reading.parent / "nope" / "x.ucz"))
    assert result.returncode == 3
    assert "does not exist" in result.stderr


def test_debug_lets_the_error_propagate_with_its_traceback(
    cli_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["unicomp", "--debug", "compress", str(tmp_path / "x.csv")])
    with pytest.raises(InputError, match="does not exist"):
        main()


def test_models_lists_the_search_path(cli) -> None:
    result = cli("models", "--json")
    names = [row["name"] for row in json.loads(result.stdout)]
    assert "sensor-default" in names


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def train_sensor(cli, data: Path, out: Path, config: Path, *options: str):
    """``unicomp train`` of the sensor modality with a TOML config."""
    args = ["--modality", "sensor", "--data", str(data), "--out", str(out), "--config"]
    return cli("train", *args, str(config), *options)


def test_train_command_uses_the_toml_config_and_names_the_files_it_left_out(
    cli, sensor_data: Path, tmp_path: Path
) -> None:
    config = tmp_path / "tiny.toml"
    config.write_text(
        'name = "sensor-tiny"\n[train]\nfloat_steps = 4\nsoft_steps = 4\nhard_steps = 4\n'
        "adversarial_start = 2\nbatch_size = 2\n"
    )
    data = tmp_path / "data"
    shutil.copytree(sensor_data, data)
    (data / "broken.csv").write_text("not a reading\n")
    result = train_sensor(cli, data, tmp_path / "run", config)
    assert result.returncode == 0, result.stderr
    assert "left out broken.csv: " in result.stdout and "model written to" in result.stdout
    card = read_card(tmp_path / "run" / "sensor-tiny.json")
    assert card["training"]["steps"] == 12
    assert card["training"]["command"].startswith("unicomp train --modality sensor")
    assert card["config"]["train"]["batch_size"] == 2


def test_train_command_fine_tunes_a_model_under_a_new_name(
    cli, sensor_data: Path, tmp_path: Path
) -> None:
    one_point = "rate_weights = []\nrate_targets = []\n"
    config = tmp_path / "tiny.toml"
    config.write_text(
        f'name = "sensor-tiny"\n[train]\n{one_point}float_steps = 4\nsoft_steps = 4\n'
        "hard_steps = 4\nadversarial_start = 2\nbatch_size = 2\n"
    )
    assert train_sensor(cli, sensor_data, tmp_path / "run", config).returncode == 0
    released = tmp_path / "run" / "sensor-tiny.json"
    tuning = tmp_path / "tune.toml"
    tuning.write_text(
        f"[train]\n{one_point}float_steps = 0\nsoft_steps = 0\nhard_steps = 3\n"
        "adversarial_start = 0\n"
    )
    result = train_sensor(
        cli, sensor_data, tmp_path / "tuned", tuning, "--start-from", str(released)
    )
    assert result.returncode == 0, result.stderr
    card = read_card(tmp_path / "tuned" / "sensor-tiny-tuned.json")
    assert card["training"]["steps"] == 3
    assert card["training"]["started_from"]["model"] == "sensor-tiny"
    assert card["training"]["started_from"]["sha256"] == read_card(released)["weights"]["sha256"]
    # The model's own config is the base: its batch size, not the sensor default's.
    assert card["config"]["train"]["batch_size"] == 2
    wrong = train_sensor(cli, sensor_data, tmp_path / "x", tuning, "--start-from", "speech-v1")
    assert wrong.returncode == 2
    assert "model 'speech-v1' is a speech model" in wrong.stderr


def test_unknown_config_keys_are_usage_errors(cli, sensor_data: Path, tmp_path: Path) -> None:
    config = tmp_path / "typo.toml"
    config.write_text("[train]\nfloat_stpes = 4\n")
    result = train_sensor(cli, sensor_data, tmp_path / "run", config)
    assert result.returncode == 2
    assert "float_stpes" in result.stderr


def test_decoding_with_another_model_names_both(
    cli, reading: Path, sensor_data: Path, sensor, tmp_path: Path
) -> None:
    from conftest import tiny_config

    from unicomp.core.trainer import train

    other_config = tiny_config(
        sensor, float_steps=2, soft_steps=2, hard_steps=2, adversarial_start=1, batch_size=2
    )
    other_config.name = "sensor-other"
    other = train(sensor, other_config, sensor_data, tmp_path / "other")
    cli("compress", str(reading), "-q")
    result = cli(
        "decompress",
        str(reading.with_suffix(".ucz")),
        "--model",
        str(other),
        "-o",
        str(tmp_path / "x.csv"),
    )
    assert result.returncode == 5
    assert "sensor-default" in result.stderr and "sensor-other" in result.stderr
    assert not (tmp_path / "x.csv").exists()


def test_ctrl_c_before_typer_guards_the_command_exits_1_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def pressed_during_start_up() -> None:  # as while typer builds the command
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_module, "app", pressed_during_start_up)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip() == "interrupted"

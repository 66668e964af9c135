"""Folder runs: ``unicomp compress DIR -o OUT [--workers N]`` and back, with the sensor model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import write_csv
from unicomp_sensor.synthetic import synthetic_reading

from unicomp import api, folders
from unicomp.core.codec import Codec
from unicomp.errors import UsageError
from unicomp.folders import Shard

NAMES = ["a.csv", "b.csv", "c.csv", "d.csv", "sub/a.csv", "sub/deeper/e.csv"]


@pytest.fixture()
def readings(tmp_path: Path) -> Path:
    """Six readings in a small tree, plus files a folder run must leave alone."""
    folder = tmp_path / "readings"
    rng = np.random.default_rng(3)
    for name in NAMES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        write_csv(folder / name, synthetic_reading(rng, 1200))
    (folder / "notes.txt").write_text("not a signal\n")
    (folder / ".hidden.csv").write_text("value\n1\n2\n")
    return folder


def decoded_snr(sensor, original: Path, decoded: Path) -> float:
    return sensor.metrics(sensor.load(original), sensor.load(decoded))["snr_db"]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_folder_is_mirrored_and_every_output_decodes(
    cli, sensor, readings: Path, tmp_path: Path, workers: str
) -> None:
    packed, restored = tmp_path / "packed", tmp_path / "restored"
    result = cli("compress", str(readings), "-o", str(packed), "--workers", workers)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"compressed 6 of 6 files into {packed}")
    assert "1 other files ignored" in result.stdout
    written = sorted(str(p.relative_to(packed)) for p in packed.rglob("*") if p.is_file())
    assert written == sorted(f"{name}.ucz" for name in NAMES)
    # The summary gives the range of rates the files reached.
    rates = [
        sensor.rate(8 * (packed / f"{n}.ucz").stat().st_size, sensor.load(readings / n))
        for n in NAMES
    ]
    assert f"; bits/sample min {min(rates):.4g}, mean " in result.stdout
    assert f", max {max(rates):.4g}" in result.stdout

    result = cli("decompress", str(packed), "-o", str(restored), "-j", workers)
    assert result.returncode == 0, result.stderr
    for name in NAMES:
        assert decoded_snr(sensor, readings / name, restored / name) > 10


def test_a_bad_file_is_reported_and_the_others_are_written(
    cli, readings: Path, tmp_path: Path
) -> None:
    (readings / "sub" / "broken.csv").write_text("value\n1.5\nhello\n")
    packed = tmp_path / "packed"
    result = cli("compress", str(readings), "-o", str(packed), "-j", "2")
    assert result.returncode == 3
    assert result.stderr.strip().splitlines() == [
        f"error: {readings / 'sub' / 'broken.csv'}:3: 'hello' is not a number"
    ]
    assert "compressed 6 of 7 files" in result.stdout and "1 failed" in result.stdout
    assert len(list(packed.rglob("*.ucz"))) == 6


def test_existing_outputs_are_skipped_unless_forced(cli, readings: Path, tmp_path: Path) -> None:
    packed = tmp_path / "packed"
    assert cli("compress", str(readings), "-o", str(packed), "-q").returncode == 0
    (packed / "a.csv.ucz").write_bytes(b"kept")
    again = cli("compress", str(readings), "-o", str(packed), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) | {"seconds": 0} == {
        "output": str(packed),
        "total": 6,
        "done": 0,
        "skipped": 6,
        "failed": 0,
        "ignored": 1,
        "other_shards": 0,
        "shard": "1/1",
        "interrupted": False,
        "exit_code": 0,
        "seconds": 0,
        "rates": {},  # of the files this run compressed: none
    }
    assert (packed / "a.csv.ucz").read_bytes() == b"kept"
    assert cli("compress", str(readings), "-o", str(packed), "-q", "--force").returncode == 0
    assert (packed / "a.csv.ucz").read_bytes()[:4] == b"UCZ1"


def test_a_model_compresses_only_the_files_of_its_modality(
    cli, readings: Path, tmp_path: Path
) -> None:
    (readings / "photo.png").write_bytes(b"not even an image")
    packed = tmp_path / "packed"
    result = cli("compress", str(readings), "-o", str(packed), "--model", "sensor-default")
    assert result.returncode == 0, result.stderr
    assert "2 other files ignored" in result.stdout


def test_an_output_folder_inside_the_input_is_not_walked(cli, readings: Path) -> None:
    inside = readings / "packed"
    assert cli("compress", str(readings), "-o", str(inside), "-q").returncode == 0
    result = cli("compress", str(readings), "-o", str(inside))
    assert result.stdout.startswith("compressed 0 of 6 files")
    restored = readings / "restored"
    assert cli("decompress", str(inside), "-o", str(restored), "-q").returncode == 0
    assert sorted(p.name for p in restored.rglob("*.csv")) == sorted(Path(n).name for n in NAMES)


def test_metrics_are_for_single_files(cli, readings: Path, tmp_path: Path) -> None:
    result = cli("compress", str(readings), "-o", str(tmp_path / "packed"), "--metrics")
    assert result.returncode == 2
    assert "--metrics" in result.stderr


def test_a_worker_loads_each_model_once(
    registry, sensor_model: Path, readings: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads = []
    load = Codec.load
    monkeypatch.setattr(Codec, "load", lambda *args: loads.append(args) or load(*args))
    codecs: dict[str, Codec] = {}  # what a worker keeps between files
    for name in NAMES[:3]:
        output = tmp_path / f"{name}.ucz"
        api.compress(readings / name, output, model=sensor_model, registry=registry, codecs=codecs)
    assert len(loads) == 1


def test_shards_split_a_corpus_into_parts_that_cover_every_file_once() -> None:
    paths = [Path(f"take{i % 7}/clip{i:05d}.wav") for i in range(3000)]
    for count in (1, 2, 5):
        shards = [Shard(index, count) for index in range(1, count + 1)]
        owners = [[shard.holds(path) for shard in shards].count(True) for path in paths]
        assert owners == [1] * len(paths)
        sizes = [sum(shard.holds(path) for path in paths) for shard in shards]
        assert max(sizes) < 1.15 * len(paths) / count  # a hash splits evenly
        # A signal's compressed file falls into the signal's shard.
        assert all(s.holds(p) == s.holds(Path(f"{p}.ucz")) for s in shards for p in paths[:200])
    assert Shard.parse(" 2/5") == Shard(2, 5)
    for bad in ("0/2", "3/2", "1", "a/b", "1/0", "-1/2"):
        with pytest.raises(UsageError, match="--shard"):
            Shard.parse(bad)


def test_a_shard_codes_only_its_own_files(cli, sensor, readings: Path, tmp_path: Path) -> None:
    packed, restored = tmp_path / "packed", tmp_path / "restored"
    # By path hash, shard 2 of 2 holds c.csv and notes.txt; the other five readings are 1's.
    result = cli("compress", str(readings), "-o", str(packed), "--shard", "2/2", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["shard"], summary["done"], summary["total"]) == ("2/2", 1, 1)
    assert (summary["ignored"], summary["other_shards"]) == (1, 5)  # hidden files: never
    assert [p.relative_to(packed).as_posix() for p in packed.rglob("*.ucz")] == ["c.csv.ucz"]
    bits = 8 * (packed / "c.csv.ucz").stat().st_size
    rate = sensor.rate(bits, sensor.load(readings / "c.csv"))
    assert summary["rates"] == {
        "bits/sample": {"files": 1, "minimum": rate, "mean": rate, "maximum": rate}
    }

    result = cli("decompress", str(packed), "-o", str(restored), "--shard", "2/2")
    assert result.returncode == 0, result.stderr
    assert "decompressed 1 of 1 files" in result.stdout and "shard 2/2" in result.stdout
    assert [p.name for p in restored.rglob("*") if p.is_file()] == ["c.csv"]

    refused = cli("compress", str(readings / "a.csv"), "--shard", "1/2")
    assert refused.returncode == 2
    assert refused.stderr.strip() == "error: --shard splits folders, not single files"


def test_ctrl_c_ends_a_one_worker_run_with_whole_outputs(
    cli, readings: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    packed, started = tmp_path / "packed", []
    code_one = folders.run_job

    def interrupted_at_the_second(job, codecs):  # Ctrl-C as the second file begins
        started.append(job.source)
        if len(started) == 2:
            raise KeyboardInterrupt
        return code_one(job, codecs)

    monkeypatch.setattr(folders, "run_job", interrupted_at_the_second)
    result = cli("compress", str(readings), "-o", str(packed))
    assert result.returncode == 1
    assert "interrupted" in result.stderr and "compressed 1 of 6 files" in result.stdout
    assert [p.name for p in packed.rglob("*") if p.is_file()] == ["a.csv.ucz"]

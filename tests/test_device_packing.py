"""Packing for a lent device call (64 MiB at most): benchmarks/device_tree.sh keeps the
bundled weights from travelling and puts them back; benchmarks/speech_pack.py packs a
lossless, stratified share of the speech train split within a byte budget."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture()
def checkout(tmp_path: Path) -> Path:
    """A git checkout with the script, two bundled weight files and a card."""
    repo = tmp_path / "repo"
    (repo / "benchmarks").mkdir(parents=True)
    (repo / "unicomp" / "weights" / "baselines").mkdir(parents=True)
    shutil.copy(BENCHMARKS / "device_tree.sh", repo / "benchmarks")
    (repo / "unicomp" / "weights" / "old.safetensors").write_bytes(b"\1" * 3_000_000)
    (repo / "unicomp" / "weights" / "baselines" / "b.safetensors").write_bytes(b"\2" * 2_000_000)
    (repo / "unicomp" / "weights" / "default.safetensors").write_bytes(b"\3" * 1_000_000)
    (repo / "unicomp" / "weights" / "old.json").write_text("{}")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "bundle")
    return repo


def tree(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = repo / "benchmarks" / "device_tree.sh"
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True)


def test_slim_keeps_only_the_named_weights_travelling_and_restore_brings_all_back(
    checkout: Path,
) -> None:
    full = tree(checkout, "size")
    assert full.returncode == 0 and full.stdout.startswith("5.7 MiB would travel")

    slim = tree(checkout, "slim", "unicomp/weights/default.safetensors")
    assert slim.returncode == 0, slim.stderr
    travelling = git(checkout, "ls-files", "--cached", "--others", "--exclude-standard")
    assert "unicomp/weights/default.safetensors" in travelling
    assert "unicomp/weights/old.json" in travelling
    assert "old.safetensors" not in travelling and "b.safetensors" not in travelling
    assert (checkout / "unicomp" / "weights" / "old.safetensors").exists()  # still here
    assert "1.0 MiB would travel" in tree(checkout, "size").stdout

    again = tree(checkout, "slim")  # slimming twice starts afresh, with the new KEEP
    assert again.returncode == 0 and "untracked 3 weight files" in again.stdout

    assert tree(checkout, "restore").returncode == 0
    assert git(checkout, "status", "--porcelain") == ""  # the index as HEAD has it
    assert "safetensors" not in (checkout / ".git" / "info" / "exclude").read_text()
    assert tree(checkout, "size").stdout.startswith("5.7 MiB")


def test_slim_refuses_an_index_with_staged_changes(checkout: Path) -> None:
    (checkout / "new.txt").write_text("x")
    git(checkout, "add", "new.txt")
    refused = tree(checkout, "slim")
    assert refused.returncode == 1 and "staged changes" in refused.stderr
    assert "old.safetensors" in git(checkout, "ls-files")


def test_size_fails_past_what_a_call_carries(checkout: Path, tmp_path: Path) -> None:
    carried = tmp_path / "carried"
    carried.mkdir()
    (carried / "data").write_bytes(b"\0" * 64 * 2**20)
    over = tree(checkout, "size", str(carried))
    assert over.returncode == 1 and over.stdout.startswith("69.7 MiB would travel")


def test_speech_pack_keeps_every_folder_losslessly_within_the_budget(tmp_path: Path) -> None:
    data, out = tmp_path / "train", tmp_path / "pack"
    rng = np.random.default_rng(0)
    originals = {}
    for folder, count in (("voice_a", 12), ("voice_b", 4), ("klettres/xx", 4)):
        (data / folder).mkdir(parents=True)
        for index in range(count):
            samples = (rng.normal(0, 3000, 16000) + 0.5).astype(np.int16)
            path = data / folder / f"p{index}.wav"
            sf.write(path, samples, 16000, subtype="PCM_16")
            originals[f"{folder}/p{index}"] = samples
    args = ["--data", str(data), "--out", str(out), "--budget-mib", "0.3"]
    packed = subprocess.run(
        [sys.executable, str(BENCHMARKS / "speech_pack.py"), *args],
        capture_output=True,
        text=True,
    )
    assert packed.returncode == 0, packed.stderr
    files = sorted(out.rglob("*.flac"))
    assert sum(p.stat().st_size for p in files) <= 0.3 * 2**20
    assert 6 <= len(files) < 20 and f"packed {len(files)} of 20 files" in packed.stdout
    shares = {
        folder: len(list((out / folder).glob("*.flac")))
        for folder in ("voice_a", "voice_b", "klettres/xx")
    }
    assert all(count >= 1 for count in shares.values())
    assert shares["voice_a"] >= 2 * shares["voice_b"]  # each folder keeps its weight
    for path in files:
        samples, rate = sf.read(path, dtype="int16")
        key = str(path.relative_to(out).with_suffix(""))
        assert rate == 16000 and np.array_equal(samples, originals[key])

    again = subprocess.run(
        [sys.executable, str(BENCHMARKS / "speech_pack.py"), *args],
        capture_output=True,
        text=True,
    )
    assert again.returncode != 0 and "is not empty" in again.stderr

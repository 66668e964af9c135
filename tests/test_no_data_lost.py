"""No data lost: killing ``unicomp compress`` mid-way leaves its input and its output folder
as they were, and a folder run keeps every output it finished, whole.

The command runs as a user runs it: its own process group, stderr on a terminal (so the
progress bar shows), Ctrl-C sent to the whole group as a terminal does. A single file is
killed once the bar says the latent search is under way; a folder run once its first
output exists. Temporary files are made only when the bytes are ready, so even
``kill -9`` leaves none unless it lands in the moment of writing (see README).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import write_csv
from unicomp_sensor.synthetic import synthetic_reading

from unicomp import api


@pytest.fixture(scope="module")
def patient_model(sensor_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test model with a search that never gives up early: it runs every iteration
    asked for, so a long one outlasts the test whatever the search finds."""
    folder = tmp_path_factory.mktemp("patient-model")
    card = json.loads(sensor_model.read_text())
    card["config"]["admm"].update(patience=10**9, time_budget=None)
    weights = card["weights"]["file"]
    shutil.copy(sensor_model.parent / weights, folder / weights)
    (folder / sensor_model.name).write_text(json.dumps(card))
    return folder / sensor_model.name


def slow(model: Path, iterations: int = 100_000) -> list[str]:
    """Compress options for a search of ``iterations`` full iterations."""
    return ["--model", str(model), "--admm-iters", str(iterations)]


class Terminal:
    """A pseudo-terminal for a child's stderr, read continuously so the child never blocks.

    Closing it ends the jobs started on it, as closing a shell's terminal does: a child
    that survived a failed test would otherwise run on, slowing every test after it.
    """

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        self.jobs: list[int] = []  # process groups started on it
        self._seen = b""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            select.select([self.master], [], [])
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # EIO: every process holding the terminal is gone
                return
            if not chunk:
                return
            self._seen += chunk

    def wait_for(self, text: str, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while text.encode() not in self._seen:
            assert time.monotonic() < deadline, f"{text!r} never shown: {self.text[-300:]!r}"
            time.sleep(0.2)

    @property
    def text(self) -> str:
        return self._seen.decode(errors="replace")

    def close(self) -> None:
        for group in self.jobs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        self._reader.join(timeout=10)
        os.close(self.master)


@pytest.fixture()
def terminal() -> Iterator[Terminal]:
    opened = Terminal()
    yield opened
    opened.close()


def start(args: list[str], env: dict[str, str], terminal: Terminal) -> subprocess.Popen[bytes]:
    # A child inherits an ignored Ctrl-C (and Python then never raises KeyboardInterrupt
    # in it), so it must not start while this process ignores it: a shell never does that.
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "unicomp", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=terminal.slave,
            # A child that hangs shows its Python stack on SIGABRT (see exit_code).
            env={**env, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"},
            start_new_session=True,  # its own process group, like a job in a shell
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    os.close(terminal.slave)
    terminal.jobs.append(process.pid)
    return process


def exit_code(process: subprocess.Popen[bytes], terminal: Terminal, timeout: float = 120) -> int:
    """The child's exit status; a child still running after ``timeout`` fails the test
    with the Python stack it prints on SIGABRT."""
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGABRT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
        time.sleep(1)  # let the reader take the stack from the terminal
        pytest.fail(f"still running {timeout} s after the signal:\n{terminal.text[-4000:]}")


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``folder`` (hidden ones too): content hash and modification time."""
    return {
        str(p.relative_to(folder)): (
            hashlib.sha256(p.read_bytes()).hexdigest(),
            p.stat().st_mtime_ns,
        )
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def wait_until_gone(group: int, timeout: float = 30) -> None:
    """Wait until no process of ``group`` (workers, resource tracker) is left."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        assert time.monotonic() < deadline, f"processes of group {group} outlived the command"
        time.sleep(0.2)


@pytest.mark.parametrize(("sent", "code"), [(signal.SIGINT, 1), (signal.SIGKILL, -9)])
def test_killing_compress_mid_search_leaves_nothing_behind(
    cli_env: dict[str, str],
    terminal: Terminal,
    tmp_path: Path,
    patient_model: Path,
    sent: signal.Signals,
    code: int,
) -> None:
    source = write_csv(tmp_path / "long.csv", synthetic_reading(np.random.default_rng(1), 200_000))
    out = tmp_path / "out"
    out.mkdir()
    before = snapshot(tmp_path)
    process = start(
        ["compress", str(source), "-o", str(out / "long.ucz"), *slow(patient_model)],
        cli_env,
        terminal,
    )
    terminal.wait_for("searching latent")
    os.killpg(process.pid, sent)
    assert exit_code(process, terminal) == code
    wait_until_gone(process.pid)
    assert snapshot(tmp_path) == before  # input untouched, no output, no temporary file


@pytest.fixture()
def readings(tmp_path: Path) -> Path:
    folder = tmp_path / "readings"
    folder.mkdir()
    rng = np.random.default_rng(2)
    for index in range(8):
        write_csv(folder / f"r{index}.csv", synthetic_reading(rng, 20_000))
    return folder


def wait_for_first_output(folder: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 300
    while not any(p.name.endswith(".csv.ucz") for p in folder.glob("*")):
        assert process.poll() is None, "the run ended before its first output"
        assert time.monotonic() < deadline, "no output appeared"
        time.sleep(0.2)


def decode_all(outputs: list[Path], sensor_model: Path, registry, tmp_path: Path) -> None:
    """Decode every output: a half-written one would fail its length or CRC check."""
    for output in outputs:
        decoded = tmp_path / "decoded" / output.name.removesuffix(".ucz")
        decoded.parent.mkdir(exist_ok=True)
        api.decompress(output, decoded, model=sensor_model, registry=registry)


def start_slow_folder_run(
    readings: Path, out: Path, cli_env: dict[str, str], terminal: Terminal, model: Path
) -> subprocess.Popen[bytes]:
    """A 2-worker folder compression with a long search, once its first output exists."""
    args = ["compress", str(readings), "-o", str(out), "-j", "2", *slow(model, 100)]
    process = start(args, cli_env, terminal)
    wait_for_first_output(out, process)
    return process


def test_ctrl_c_stops_a_folder_run_and_keeps_whole_outputs(
    cli_env: dict[str, str],
    terminal: Terminal,
    readings: Path,
    tmp_path: Path,
    sensor_model: Path,
    patient_model: Path,
    registry,
) -> None:
    out, before = tmp_path / "out", snapshot(readings)
    process = start_slow_folder_run(readings, out, cli_env, terminal, patient_model)
    os.killpg(process.pid, signal.SIGINT)
    assert exit_code(process, terminal) == 1
    wait_until_gone(process.pid)
    assert "interrupted" in terminal.text
    assert snapshot(readings) == before
    outputs = sorted(out.iterdir())
    assert 0 < len(outputs) < 8
    assert all(not p.name.startswith(".") for p in outputs)  # no temporary file left
    decode_all(outputs, sensor_model, registry, tmp_path)


def test_workers_end_with_a_killed_parent(
    cli_env: dict[str, str],
    terminal: Terminal,
    readings: Path,
    tmp_path: Path,
    sensor_model: Path,
    patient_model: Path,
    registry,
) -> None:
    out, before = tmp_path / "out", snapshot(readings)
    process = start_slow_folder_run(readings, out, cli_env, terminal, patient_model)
    process.kill()  # the parent alone: its workers must notice and end, not linger
    assert exit_code(process, terminal, timeout=60) == -9
    wait_until_gone(process.pid)
    assert snapshot(readings) == before
    outputs = [p for p in out.iterdir() if not p.name.startswith(".")]
    temporaries = [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert all(".part" in name for name in temporaries)  # only if killed mid-write
    decode_all(outputs, sensor_model, registry, tmp_path)

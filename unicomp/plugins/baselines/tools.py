"""Running the external command-line codecs (c2enc, opusenc, ffmpeg, ...).

Every tool reads and writes files named on its command line. While it runs, a thread
samples its peak RSS (``VmHWM`` in ``/proc/<pid>/status``) every millisecond and the
bench is told the last value; ``ru_maxrss`` would not do, since a child forked from
the bench starts out with the bench's own pages and the kernel counts them. A tool
that fails is one :class:`~unicomp.bench.base.BaselineError` quoting its last error line.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from unicomp.bench.base import BaselineError
from unicomp.bench.measure import note_child_peak

SAMPLE_SECONDS = 0.001
KIB = 1024


def missing_tools(commands: Sequence[str], package: str) -> str | None:
    """Why these commands cannot run (naming the Debian package), or None if they can."""
    missing = [command for command in commands if shutil.which(command) is None]
    if not missing:
        return None
    return f"{' and '.join(missing)} not found (Debian: apt-get install {package})"


def run_tool(arguments: Sequence[str | Path | float]) -> None:
    """Run one tool to completion; report its peak RSS; raise BaselineError if it fails."""
    command = [str(a) for a in arguments]
    with tempfile.TemporaryFile() as errors:
        try:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors
            )
        except OSError as error:
            raise BaselineError(f"cannot run {command[0]}: {error.strerror}") from None
        finished = threading.Event()
        peak = [0]
        watcher = threading.Thread(target=_watch, args=(process.pid, finished, peak), daemon=True)
        watcher.start()
        try:
            process.wait()
        except KeyboardInterrupt:
            process.kill()
            process.wait()
            raise
        finally:
            finished.set()
            watcher.join()
        if peak[0]:
            note_child_peak(peak[0])
        if process.returncode == -signal.SIGINT:
            raise KeyboardInterrupt
        if process.returncode != 0:
            errors.seek(0)
            lines = errors.read().decode("utf-8", "replace").strip().splitlines()
            detail = lines[-1] if lines else "no message"
            raise BaselineError(f"{command[0]} failed (exit {process.returncode}): {detail}")


def _watch(pid: int, finished: threading.Event, peak: list[int]) -> None:
    """Keep the highest VmHWM of process ``pid`` in ``peak[0]`` until ``finished``."""
    status = Path(f"/proc/{pid}/status")
    while not finished.is_set():
        try:
            text = status.read_text()
        except OSError:
            return  # not Linux, or the process is gone
        for line in text.splitlines():
            if line.startswith("VmHWM:"):
                peak[0] = max(peak[0], int(line.split()[1]) * KIB)
        finished.wait(SAMPLE_SECONDS)

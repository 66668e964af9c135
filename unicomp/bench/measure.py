"""Wall time and peak memory of one encode or decode call.

Memory is the call's own footprint, not the process's: on Linux the kernel's peak-RSS
mark (VmHWM) is reset before the call (``/proc/self/clear_refs``) and compared with the
RSS the process had before it. Codecs that run an external tool report that child's
peak RSS through :func:`note_child_peak`, and it is added, since the child runs while
the bench holds its own memory. Where the kernel offers neither, the peak is None.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_RESET_PEAK_RSS = "5"
_child_peaks: ContextVar[list[int] | None] = ContextVar("unicomp_child_peaks", default=None)


@dataclass(frozen=True)
class Measured(Generic[T]):
    """What a call returned, how long it took and the memory it needed at its peak."""

    value: T
    seconds: float
    peak_bytes: int | None


def measure(call: Callable[[], T]) -> Measured[T]:
    """Run ``call`` once and measure it (see the module docstring)."""
    resettable = _reset_peak()
    before = _status_bytes("VmRSS") if resettable else None
    children: list[int] = []
    token = _child_peaks.set(children)
    started = time.perf_counter()
    try:
        value = call()
    finally:
        seconds = time.perf_counter() - started
        _child_peaks.reset(token)
    peak = None
    if before is not None:
        after = _status_bytes("VmHWM")
        peak = max(0, after - before) if after is not None else None
    if children:
        peak = (peak or 0) + max(children)
    return Measured(value, seconds, peak)


def note_child_peak(peak_bytes: int) -> None:
    """Report the peak RSS of a child process the measured call ran and waited for."""
    children = _child_peaks.get()
    if children is not None:
        children.append(peak_bytes)


def _reset_peak() -> bool:
    try:
        _CLEAR_REFS.write_text(_RESET_PEAK_RSS)
    except OSError:
        return False
    return True


def _status_bytes(field: str) -> int | None:
    try:
        text = _STATUS.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024  # the kernel reports kB
    return None

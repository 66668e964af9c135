"""What a worker of a folder run does: code one file, report a short outcome.

A folder run with one worker calls :func:`run_job` in its own process; with several,
each is a process of its own, described here.

A worker runs torch on one thread (N workers share N cores), keeps the models it has
loaded for the files that follow, and ignores Ctrl-C: the parent process owns the
interrupt and asks workers to stop through an event, which the latent search checks at
every iteration, so an interrupted file ends like a failed one (nothing written). A
worker whose parent is gone (``kill -9``) exits instead of lingering as an orphan.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from dataclasses import dataclass
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Literal

import torch

from unicomp import api
from unicomp.core.codec import Codec
from unicomp.errors import INTERNAL_EXIT_CODE, OutputExistsError, UnicompError

Status = Literal["done", "skipped", "failed", "interrupted"]


@dataclass(frozen=True)
class Job:
    """One file to code: compress to the .ucz ``output``, or decode into the folder ``output``."""

    compress: bool
    source: Path
    output: Path
    model: str | None = None
    rate: str | None = None
    effort: str = "default"
    admm_iterations: int | None = None
    overwrite: bool = False
    device: str = "cpu"


@dataclass(frozen=True)
class Outcome:
    """How one file went; small, so results never pile up in the parent. A compressed
    file also reports the rate it reached, in its modality's unit."""

    source: Path
    status: Status
    message: str = ""
    exit_code: int = 0
    rate: float | None = None
    rate_unit: str = ""


class _Stopped(Exception):
    """The parent asked the workers to stop."""


_stop: Event | None = None
_codecs: dict[str, Codec] = {}


def start_worker(stop: Event) -> None:
    """Pool initializer: one torch thread, Ctrl-C left to the parent, no orphan."""
    global _stop
    _stop = stop
    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, daemon=True).start()


def run_job(job: Job, codecs: dict[str, Codec] | None = None) -> Outcome:
    """Code one file; every failure becomes an outcome, never an exception. Models are
    kept in ``codecs`` (by default, this worker process's own) for the files after it."""
    kept = _codecs if codecs is None else codecs
    if _stop is not None and _stop.is_set():  # queued before Ctrl-C, not yet begun
        return Outcome(job.source, "interrupted")
    try:
        rate: float | None = None
        unit = ""
        if job.compress:
            report = api.compress(
                job.source,
                job.output,
                model=job.model,
                rate=job.rate,
                effort=job.effort,
                admm_iterations=job.admm_iterations,
                overwrite=job.overwrite,
                on_iteration=_check_stop,
                codecs=kept,
                device=job.device,
            ).report
            rate, unit = report.rate, report.rate_unit
        else:
            api.decompress(
                job.source,
                output_dir=job.output,
                model=job.model,
                overwrite=job.overwrite,
                codecs=kept,
                device=job.device,
            )
    except OutputExistsError:
        return Outcome(job.source, "skipped")
    except _Stopped:
        return Outcome(job.source, "interrupted")
    except UnicompError as error:
        return Outcome(job.source, "failed", str(error), error.exit_code)
    except Exception as error:  # a bug on one file must not end the run
        message = f"internal error: {type(error).__name__}: {error}"
        return Outcome(job.source, "failed", message, INTERNAL_EXIT_CODE)
    return Outcome(job.source, "done", rate=rate, rate_unit=unit)


def _check_stop(iteration: int, budget: int) -> None:
    if _stop is not None and _stop.is_set():
        raise _Stopped


def _exit_with_parent() -> None:
    parent = multiprocessing.parent_process()
    if parent is not None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)

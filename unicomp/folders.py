"""Compress or decompress every file of a folder tree with a pool of worker processes.

The tree is mirrored into the output folder: ``DIR/a/x.png`` becomes
``OUT/a/x.png.ucz`` (the whole name is kept, so ``x.png`` and ``x.wav`` never collide)
and decompressing that gives back ``OUT/a/x.png``. Hidden files and folders (unicomp's
own temporaries among them) and the output folder itself are not visited; files no
modality reads are counted as ignored. An existing output is skipped unless
``overwrite``. Memory stays flat however many files there are: the tree is walked
lazily, only a few jobs are in flight, and each outcome is handed to ``on_file`` and
dropped. One worker codes in this very process (no process to start, no second model
load); more are a pool of processes. Ctrl-C stops the work at the next search step;
what is written is whole.

A corpus too large for one machine is split with :class:`Shard`: shard K of N takes
the files whose relative path hashes to K, so N machines (a Slurm array job, an indexed
Kubernetes Job) cover every file exactly once without talking to each other, and
``x.png`` and its ``x.png.ucz`` fall into the same shard.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import math
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from unicomp.api import UCZ_SUFFIX
from unicomp.core.catalog import resolve_model
from unicomp.core.checkpoint import read_card
from unicomp.core.codec import Codec
from unicomp.errors import InputError, UsageError
from unicomp.plugins.manager import get_registry
from unicomp.workers import Job, Outcome, run_job, start_worker

#: Jobs queued per worker beyond the one it runs: enough to keep it busy, no more.
QUEUED_PER_WORKER = 2


@dataclass(frozen=True)
class Shard:
    """Part ``index`` (1 to ``count``) of a folder split ``count`` ways by path."""

    index: int = 1
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"K/N"``, as ``--shard`` takes it (1-based, like jest's and playwright's)."""
        index, slash, count = text.partition("/")
        if not (slash and index.strip().isdigit() and count.strip().isdigit()):
            raise UsageError(f"--shard takes K/N, for example 1/4; got {text!r}")
        shard = cls(int(index), int(count))
        if not 1 <= shard.index <= shard.count:
            raise UsageError(f"--shard {text}: K must be between 1 and N")
        return shard

    def holds(self, relative: Path) -> bool:
        """Whether the file at ``relative`` (to the folder) is this shard's; a ``.ucz``
        suffix is ignored, so a signal and its compressed file share a shard."""
        if self.count == 1:
            return True
        name = relative.as_posix().removesuffix(UCZ_SUFFIX)
        digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index - 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass
class RateRange:
    """The rates the files of one unit reached in a compression run."""

    files: int = 0
    minimum: float = math.inf
    mean: float = 0.0
    maximum: float = -math.inf

    def add(self, rate: float) -> None:
        self.files += 1
        self.minimum, self.maximum = min(self.minimum, rate), max(self.maximum, rate)
        self.mean += (rate - self.mean) / self.files


@dataclass
class FolderSummary:
    """Counts of a folder run; ``exit_code`` is the largest of the failed files' codes.

    ``total`` counts this shard's files; ``other_shards`` the files left to the others.
    ``rates`` gives, per rate unit (a folder can hold several modalities), the range of
    rates the files compressed in this run reached.
    """

    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    ignored: int = 0
    other_shards: int = 0
    shard: str = "1/1"
    interrupted: bool = False
    exit_code: int = 0
    seconds: float = 0.0
    rates: dict[str, RateRange] = field(default_factory=dict)

    def count(self, outcome: Outcome) -> None:
        """Add one file's outcome."""
        if outcome.status == "done":
            self.done += 1
            if outcome.rate is not None:
                self.rates.setdefault(outcome.rate_unit, RateRange()).add(outcome.rate)
        elif outcome.status == "skipped":
            self.skipped += 1
        elif outcome.status == "failed":
            self.failed += 1
            self.exit_code = max(self.exit_code, outcome.exit_code)


def compress_folder(
    source: Path,
    target: Path,
    *,
    model: str | None = None,
    rate: str | None = None,
    effort: str = "default",
    admm_iterations: int | None = None,
    overwrite: bool = False,
    workers: int = 1,
    shard: Shard = Shard(),
    device: str = "cpu",
    on_start: Callable[[int], None] | None = None,
    on_file: Callable[[Outcome], None] | None = None,
) -> FolderSummary:
    """Compress every file some modality reads (only ``model``'s, if given) into ``target``;
    only ``shard``'s part of them, and with the networks on ``device``."""
    registry = get_registry()
    if model is not None:
        card = read_card(resolve_model(model, registry.model_dirs))
        extensions = registry.modality(card["modality"]).extensions
    else:
        extensions = tuple(e for m in registry.modalities.values() for e in m.extensions)

    def job(path: Path, mirror: Path) -> Job:
        output = mirror / f"{path.name}{UCZ_SUFFIX}"
        return Job(True, path, output, model, rate, effort, admm_iterations, overwrite, device)

    return _run(source, target, extensions, job, workers, shard, on_start, on_file)


def decompress_folder(
    source: Path,
    target: Path,
    *,
    model: str | None = None,
    overwrite: bool = False,
    workers: int = 1,
    shard: Shard = Shard(),
    device: str = "cpu",
    on_start: Callable[[int], None] | None = None,
    on_file: Callable[[Outcome], None] | None = None,
) -> FolderSummary:
    """Decode every .ucz file under ``source`` (``shard``'s part) into ``target``."""

    def job(path: Path, mirror: Path) -> Job:
        return Job(False, path, mirror, model, overwrite=overwrite, device=device)

    return _run(source, target, (UCZ_SUFFIX,), job, workers, shard, on_start, on_file)


def _run(
    source: Path,
    target: Path,
    suffixes: tuple[str, ...],
    make_job: Callable[[Path, Path], Job],
    workers: int,
    shard: Shard,
    on_start: Callable[[int], None] | None,
    on_file: Callable[[Outcome], None] | None,
) -> FolderSummary:
    started = time.monotonic()
    if not source.is_dir():
        raise InputError(f"{source} is not a folder")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"cannot make output folder {target}: {error.strerror}") from None
    summary = FolderSummary(shard=str(shard))

    def part(path: Path) -> str:
        """Whose a file is: another shard's, this run's to code, or no modality's."""
        if not shard.holds(path.relative_to(source)):
            return "other shard"
        return "job" if path.suffix.lower() in suffixes else "ignored"

    for path in _files(source, target):
        kind = part(path)
        if kind == "other shard":
            summary.other_shards += 1
        elif kind == "job":
            summary.total += 1
        else:
            summary.ignored += 1
    if on_start is not None:
        on_start(summary.total)

    def jobs() -> Iterator[Job]:
        for path in _files(source, target):
            if part(path) == "job":
                mirror = target / path.parent.relative_to(source)
                mirror.mkdir(parents=True, exist_ok=True)
                yield make_job(path, mirror)

    def report(outcomes: Iterator[Outcome]) -> None:
        for outcome in outcomes:
            summary.count(outcome)
            if on_file is not None:
                on_file(outcome)

    with _WorkerPool(workers) if workers > 1 else _ThisProcess() as pool:
        try:
            report(pool.run(jobs()))
        except KeyboardInterrupt:
            summary.interrupted = True
            report(pool.stop())
    summary.seconds = time.monotonic() - started
    return summary


class _ThisProcess:
    """Runs :func:`run_job` here, file after file, keeping its models for the next.

    Ctrl-C interrupts the file in progress, whose output is then never written (atomic
    outputs), and ends the run.
    """

    def __init__(self) -> None:
        self._codecs: dict[str, Codec] = {}

    def __enter__(self) -> _ThisProcess:
        return self

    def __exit__(self, *_: object) -> None:
        self._codecs.clear()

    def run(self, jobs: Iterator[Job]) -> Iterator[Outcome]:
        for job in jobs:
            yield run_job(job, self._codecs)

    def stop(self) -> Iterator[Outcome]:
        """Nothing runs once Ctrl-C has reached this process."""
        return iter(())


class _WorkerPool:
    """``workers`` spawned processes running :func:`run_job`, with few jobs in flight."""

    def __init__(self, workers: int) -> None:
        context = multiprocessing.get_context("spawn")  # never fork a process holding torch
        self._stop = context.Event()
        self._limit = workers * (1 + QUEUED_PER_WORKER)
        self._pool = concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=context, initializer=start_worker, initargs=(self._stop,)
        )
        self._running: set[concurrent.futures.Future[Outcome]] = set()

    def __enter__(self) -> _WorkerPool:
        return self

    def __exit__(self, *_: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def run(self, jobs: Iterator[Job]) -> Iterator[Outcome]:
        """Outcomes in the order files finish."""
        for job in jobs:
            with _sigint_ignored():  # a worker started now inherits it: the parent owns Ctrl-C
                self._running.add(self._pool.submit(run_job, job))
            if len(self._running) >= self._limit:
                yield from self._collect(concurrent.futures.FIRST_COMPLETED)
        while self._running:
            yield from self._collect(concurrent.futures.FIRST_COMPLETED)

    def stop(self) -> Iterator[Outcome]:
        """Drop the queued jobs, stop the running ones, and give their outcomes."""
        self._stop.set()
        for future in self._running:
            future.cancel()
        yield from self._collect(concurrent.futures.ALL_COMPLETED)

    def _collect(self, when: str) -> Iterator[Outcome]:
        finished, _ = concurrent.futures.wait(self._running, return_when=when)
        for future in finished:
            self._running.discard(future)
            if not future.cancelled():
                yield future.result()


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore Ctrl-C for a moment (in the main thread, the only one that may)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _files(root: Path, skip: Path) -> Iterator[Path]:
    """Files under ``root`` in sorted order, leaving out hidden ones and ``skip``'s tree."""
    skip = skip.resolve()

    def unreadable(error: OSError) -> None:
        raise InputError(f"cannot list folder {error.filename}: {error.strerror}")

    for folder, subfolders, names in os.walk(root, onerror=unreadable):
        subfolders[:] = sorted(
            name
            for name in subfolders
            if not name.startswith(".") and Path(folder, name).resolve() != skip
        )
        for name in sorted(names):
            path = Path(folder, name)
            if not name.startswith(".") and path.is_file():
                yield path

"""Peak memory of compressing a folder with worker processes, as the file count grows.

    .venv/bin/python benchmarks/load_folder.py                     # 20 and 200 files, 2 workers
    .venv/bin/python benchmarks/load_folder.py --counts 20 200 2000 --workers 4

Each count gets a fresh folder of small files, compressed by
``unicomp compress DIR -o OUT --workers N`` in a child process while /proc is sampled
every 50 ms for the whole process tree (the command, its workers, multiprocessing's
resource tracker). The tree's peak RSS must not grow with the count: the parent keeps
no results and the workers no signals. Summed RSS counts pages the processes share
(torch's libraries) once per process, so PSS, which splits them, is shown too. Every
output is then decompressed (same workers) and each decoded file read back.

The files are small photos if the bundled image model is installed, otherwise sensor
readings for a sensor model trained here in a few seconds (the example plugin is
installed into the scratch folder, as a user would install it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image

from unicomp.core.catalog import available_models
from unicomp.core.config import merge
from unicomp.core.trainer import train
from unicomp.modalities.image.io import load_image
from unicomp.modalities.image.modality import DEFAULT_MODEL
from unicomp.plugins.manager import get_registry

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "unicomp-plugin-example"
PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1 << 20


def tree_memory(root: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes of ``root`` and every process below it, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:  # gone since the listing
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    rss = pss = 0
    pending = [root]
    while pending:
        pid = pending.pop()
        pending.extend(children.get(pid, []))
        try:
            rss += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        pss += next(int(line.split()[1]) * 1024 for line in rollup if line.startswith("Pss:"))
    return rss, pss


def run_sampled(command: list[str], env: dict[str, str]) -> tuple[float, int, int]:
    """Run ``command``; return (seconds, peak tree RSS, peak tree PSS); exit if it fails."""
    started = time.monotonic()
    process = subprocess.Popen(command, env=env)
    peaks = [0, 0]

    def sample() -> None:
        while process.poll() is None:
            rss, pss = tree_memory(process.pid)
            peaks[0], peaks[1] = max(peaks[0], rss), max(peaks[1], pss)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    process.wait()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed with exit code {process.returncode}")
    return time.monotonic() - started, peaks[0], peaks[1]


class Kind(NamedTuple):
    """The files of one modality: how to make one, how to check one came back whole."""

    env: dict[str, str]
    suffix: str
    write: Callable[[Path, int], None]
    check: Callable[[Path], bool]


def sensor_files(scratch: Path) -> Kind:
    """Install the example plugin and train a tiny sensor model for 2000-sample readings."""
    sys.path.insert(0, str(EXAMPLE / "src"))
    from unicomp_sensor.modality import SensorModality
    from unicomp_sensor.synthetic import synthetic_reading

    source = scratch / EXAMPLE.name  # setuptools leaves build files beside the sources
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("*.egg-info", "build"))
    site = scratch / "site"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    subprocess.run([*pip, "--target", str(site), str(source)], check=True)

    def write(path: Path, seed: int) -> None:
        values = synthetic_reading(np.random.default_rng(seed), 2000)
        path.write_text("value\n" + "\n".join(f"{v:.9g}" for v in values) + "\n")

    data = scratch / "train"
    data.mkdir()
    for seed in range(16):
        write(data / f"{seed}.csv", 10_000 + seed)
    sensor = SensorModality()
    steps = {"float_steps": 200, "soft_steps": 150, "hard_steps": 150, "adversarial_start": 200}
    config = merge(sensor.default_config(), {"train": steps})
    print("training a tiny sensor model ...", flush=True)
    card = train(sensor, config, data, scratch / "model")
    pythonpath = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": pythonpath, "UNICOMP_MODEL_PATH": str(card.parent)}
    return Kind(env, ".csv", write, lambda path: sensor.load(path).values.size == 2000)


def image_files(scratch: Path) -> Kind:
    """96x64 gradient photos for the bundled image model."""

    def write(path: Path, seed: int) -> None:
        rng = np.random.default_rng(seed)
        ramp = np.linspace(0, 1, 64 * 96).reshape(64, 96, 1) * rng.uniform(0.2, 1, 3)
        noise = 0.1 * rng.random((64, 96, 3))
        Image.fromarray(((ramp + noise) / 1.1 * 255).astype(np.uint8)).save(path)

    return Kind(dict(os.environ), ".png", write, lambda path: load_image(path).width == 96)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[20, 200], help="file counts")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--admm-iters", type=int, help="latent search budget (default: model's)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    bundled = {card.stem for card in available_models(get_registry().model_dirs)}
    make_files = image_files if DEFAULT_MODEL in bundled else sensor_files
    search = [] if args.admm_iters is None else ["--admm-iters", str(args.admm_iters)]
    unicomp = [sys.executable, "-m", "unicomp"]
    workers = ["--workers", str(args.workers)]
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        kind = make_files(scratch)
        env = {**kind.env, "OMP_NUM_THREADS": "1"}
        print(f"{'files':>6} {'workers':>7} {'seconds':>8} {'peak RSS':>12} {'peak PSS':>12}")
        for count in args.counts:
            folder, packed, restored = (scratch / f"{step}-{count}" for step in "ipr")
            folder.mkdir()
            for index in range(count):
                kind.write(folder / f"{index:05d}{kind.suffix}", index)
            seconds, rss, pss = run_sampled(
                [*unicomp, "compress", str(folder), "-o", str(packed), *workers, *search, "-q"],
                env,
            )
            subprocess.run(
                [*unicomp, "decompress", str(packed), "-o", str(restored), *workers, "-q"],
                env=env,
                check=True,
            )
            decoded = [p for p in restored.iterdir() if p.suffix == kind.suffix and kind.check(p)]
            if len(decoded) != count:
                raise SystemExit(f"only {len(decoded)} of {count} files decoded whole")
            print(
                f"{count:>6} {args.workers:>7} {seconds:>8.1f} "
                f"{rss / MIB:>8.0f} MiB {pss / MIB:>8.0f} MiB   all {count} decode",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

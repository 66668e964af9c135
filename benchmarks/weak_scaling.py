"""Weak scaling of DDP training on CPUs: 1 process against 2 gloo processes.

    .venv/bin/python benchmarks/weak_scaling.py [--steps 80] [--batch 4] [--data DIR]

Trains the image model's networks (float phase, adversarial losses on) on the same
photos five times, every process on one torch thread:

* ``single``: 1 process, batch B: the throughput a process has on its own;
* ``two singles at once``: 2 independent processes, batch B each, side by side: what
  sharing the machine alone costs a process (caches, memory bandwidth, other work);
* ``ddp``: 2 processes under torchrun, batch B each (a combined batch of 2B);
* ``combined``: 1 process, batch 2B: the loss curve ``ddp`` must follow;
* ``combined, seed 1``: the same with other crops: how far two equally good runs differ.

It prints samples per second per process (``ddp`` must keep at least 90 % of
``single``'s; its share of ``two singles at once`` is what DDP itself costs) and the
reconstruction loss over windows of the run, with the largest gap between ``ddp`` and
``combined`` beside the gap the seed alone makes. It measures; it does not gate.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from unicomp.release.corpus import CORPUS

WINDOW = 10
RANKS = 2


def launch(
    data: Path, out: Path, steps: int, batch: int, seed: int, processes: int
) -> subprocess.Popen[bytes]:
    """Start one run of ``unicomp train`` (``processes`` ranks) writing into ``out``."""
    out.mkdir(parents=True)
    config = out / "config.toml"
    config.write_text(
        "[train]\n"
        f"float_steps = {steps}\nsoft_steps = 0\nhard_steps = 0\n"
        f"batch_size = {batch}\nseed = {seed}\nlog_every = 1\ncheckpoint_every = {steps}\n",
        encoding="utf-8",
    )
    launcher = [sys.executable, "-m", "unicomp"]
    if processes > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        launcher += ["--nproc_per_node", str(processes), "-m", "unicomp"]
    command = [
        *launcher,
        *("train", "--modality", "image", "--data", str(data), "--out", str(out / "run")),
        *("--config", str(config), "--device", "cpu", "--quiet"),
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, env=environment)


def finish(process: subprocess.Popen[bytes], out: Path) -> list[dict]:
    """Wait for a run; its log lines (one per step, rank 0's)."""
    if process.wait() != 0:
        raise SystemExit(f"training into {out} failed")
    log = (out / "run" / "log.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in log]


def windows(lines: list[dict]) -> np.ndarray:
    """Mean reconstruction loss over consecutive windows of steps."""
    losses = np.array([line["reconstruction"] for line in lines])
    usable = len(losses) // WINDOW * WINDOW
    return losses[:usable].reshape(-1, WINDOW).mean(axis=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--batch", type=int, default=4, help="batch per process (B)")
    parser.add_argument("--data", type=Path, default=CORPUS / "image" / "train")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    runs = {
        "single": (args.batch, 0, 1),
        "ddp": (args.batch, 0, RANKS),
        "combined": (RANKS * args.batch, 0, 1),
        "combined, seed 1": (RANKS * args.batch, 1, 1),
    }
    logs = {}
    with tempfile.TemporaryDirectory() as scratch:
        photos = args.data  # the trainer leaves out the photos it refuses
        for index, (name, (batch, seed, processes)) in enumerate(runs.items()):
            out = Path(scratch) / str(index)
            run = launch(photos, out, args.steps, batch, seed, processes)
            logs[name] = finish(run, out)
        side_by_side = [Path(scratch) / f"side{i}" for i in range(RANKS)]
        started = [launch(photos, out, args.steps, args.batch, 0, 1) for out in side_by_side]
        concurrent = [finish(run, out) for run, out in zip(started, side_by_side, strict=True)]
    # samples per second per process
    throughput = {name: logs[name][-1]["steps_per_second"] * runs[name][0] for name in runs}
    alone_together = float(np.mean([log[-1]["steps_per_second"] for log in concurrent]))
    throughput["two singles at once"] = alone_together * args.batch
    curves = {name: windows(lines) for name, lines in logs.items()}
    gap = float(np.abs(curves["ddp"] - curves["combined"]).max())
    noise = float(np.abs(curves["combined, seed 1"] - curves["combined"]).max())
    efficiency = throughput["ddp"] / throughput["single"]
    sharing = throughput["two singles at once"] / throughput["single"]
    print(f"{args.steps} steps, batch {args.batch} per process, one thread per process")
    for name, value in throughput.items():
        print(f"  {name:<19} {value:.2f} samples/s per process")
    print(
        f"ddp keeps {100 * efficiency:.1f} % of a single process's samples/s per process; "
        f"two independent processes side by side keep {100 * sharing:.1f} %"
    )
    print(f"reconstruction loss, mean of each {WINDOW} steps:")
    for name, curve in curves.items():
        print(f"  {name:<17} " + " ".join(f"{value:.4f}" for value in curve))
    print(f"largest gap ddp/combined {gap:.4f}; the seed alone moves it by up to {noise:.4f}")
    if args.json is not None:
        figures = {
            "steps": args.steps,
            "batch_per_process": args.batch,
            "samples_per_second_per_process": throughput,
            "efficiency": efficiency,
            "side_by_side_efficiency": sharing,
            "loss_windows": {name: curve.tolist() for name, curve in curves.items()},
            "gap": gap,
            "seed_gap": noise,
        }
        args.json.write_text(json.dumps(figures, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

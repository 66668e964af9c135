"""Run the two-process DDP training test many times in a row, to show that distributed
runs end cleanly every time (a process group left alive at exit used to abort about one
run in five) and that a job torchrun restarts after a crash resumes every time (before
each attempt got its own store prefix, the restarted gloo group hung in 2 of 3 runs).

    .venv/bin/python benchmarks/ddp_loop.py [--runs 50]

Each run is the test in its own pytest process, a fresh ``torchrun --nproc_per_node 2``
job (tests/test_trainer.py::test_ddp_keeps_replicas_identical_and_a_restarted_job_resumes).
Prints a line per run, the tail of each failure, and ``N of M passed``; exits 1 unless
all passed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST = "tests/test_trainer.py::test_ddp_keeps_replicas_identical_and_a_restarted_job_resumes"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50, help="how many runs (default 50)")
    runs = parser.parse_args(argv).runs
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TEST]
    passed = 0
    for run in range(1, runs + 1):
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        passed += result.returncode == 0
        print(f"run {run}: {'passed' if result.returncode == 0 else 'FAILED'}", flush=True)
        if result.returncode != 0:
            print(result.stdout[-3000:], flush=True)
    print(f"{passed} of {runs} passed")
    return 0 if passed == runs else 1


if __name__ == "__main__":
    sys.exit(main())

"""How far each kernel setting moves decoded samples, and what it costs in decode time.

    .venv/bin/python benchmarks/kernel_settings.py [--threads 1 2 4] [--device cuda]

Compresses the bundled photo and speech clip (examples/samples) once, then decodes them
in a fresh process per setting: the contract's pinned kernels (core/kernels.py), the
same under torch thread counts, every pin off on one thread (what the pins cost), and
every lower setting this machine accepts (``kernels.lower_settings``), and ``--device``
(a GPU's decode, outside the CPU contract: how far it lands from it). For each it
prints the largest pixel difference and how many values differ, the speech SNR against
the pinned decode, and the decode seconds (best of three, after one unmeasured decode):
the figures behind the tolerance and the cost stated in docs/format.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import unicomp  # noqa: F401  (first: importing it pins the kernels)

# isort: split
import numpy as np

from unicomp import api
from unicomp.core import kernels

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ("fruits.jpg", "prompts.flac")
REPEATS = 3


def decode_all(folder: Path, threads: int | None, device: str) -> None:
    """The child's work: decode every .ucz in ``folder``, save samples and timings."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    seconds = {}
    for ucz in sorted(folder.glob("*.ucz")):
        codec = api.load_codec(api.describe(ucz)["model"], device=device)
        data = ucz.read_bytes()
        signal = codec.decode(data)
        times = []
        for _ in range(REPEATS):
            started = time.perf_counter()
            codec.decode(data)
            times.append(time.perf_counter() - started)
        seconds[ucz.stem] = min(times)
        samples = signal.pixels if hasattr(signal, "pixels") else signal.samples
        np.save(folder / f"{ucz.stem}.{os.getpid()}.npy", samples)
    (folder / f"seconds.{os.getpid()}.json").write_text(json.dumps(seconds), encoding="utf-8")


def run_setting(
    folder: Path, environment: dict[str, str], threads: int | None, device: str = "cpu"
) -> int:
    """Decode in a fresh process under ``environment``; returns its pid (names its files)."""
    inherited = {k: v for k, v in os.environ.items() if k not in kernels.PINS}
    command = [sys.executable, __file__, "--decode", str(folder), "--child-device", device]
    if threads is not None:
        command += ["--child-threads", str(threads)]
    process = subprocess.Popen(command, env={**inherited, **environment})
    if process.wait() != 0:
        raise SystemExit(f"decoding under {environment} failed")
    return process.pid


def compare(reference: np.ndarray, decoded: np.ndarray) -> str:
    """Pixels: largest difference and values differing; speech: SNR in dB."""
    error = decoded.astype(np.float64) - reference.astype(np.float64)
    if reference.ndim == 3:  # height, width, channels
        return f"max diff {np.abs(error).max():.0f}, {int(np.count_nonzero(error))} values differ"
    noise = float(np.sum(error**2))
    if noise == 0:
        return "identical"
    snr = 10 * np.log10(float(np.sum(reference.astype(np.float64) ** 2)) / noise)
    return f"SNR {snr:.1f} dB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--device", help="also decode on this device, e.g. cuda")
    parser.add_argument("--decode", type=Path, help=argparse.SUPPRESS)  # a child's folder
    parser.add_argument("--child-threads", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-device", default="cpu", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.decode is not None:
        decode_all(args.decode, args.child_threads, args.child_device)
        return 0
    print(f"this CPU: contract covered: {kernels.covered()}", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for name in SAMPLES:
            api.compress(ROOT / "examples" / "samples" / name, folder / f"{name}.ucz")
        settings = [(f"pinned, {n} thread(s)", {}, n, "cpu") for n in args.threads]
        # What the pins cost: the same single thread with every pin off.
        settings.append(("pins off, 1 thread", {kernels.NATIVE_ENV: "1"}, 1, "cpu"))
        settings += [(name, env, None, "cpu") for name, env in kernels.lower_settings().items()]
        if args.device is not None:
            settings.append((f"networks on {args.device}", {}, None, args.device))
        pids = {
            name: run_setting(folder, env, threads, device)
            for name, env, threads, device in settings
        }
        reference = pids[settings[0][0]]
        for name, pid in pids.items():
            seconds = json.loads((folder / f"seconds.{pid}.json").read_text(encoding="utf-8"))
            print(f"{name}:", flush=True)
            for sample in SAMPLES:
                base = np.load(folder / f"{sample}.{reference}.npy")
                decoded = np.load(folder / f"{sample}.{pid}.npy")
                print(f"  {sample:<14} decode {seconds[sample]:.3f} s   {compare(base, decoded)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Peak memory and time of compressing and decompressing a huge photo (default 6000x4000).

    .venv/bin/python benchmarks/image_memory.py                  # 24 megapixels
    .venv/bin/python benchmarks/image_memory.py --size 3000x2000 --admm-iters 2

The photo is a train image (never an evaluate one) upscaled to the size asked. Each
step runs ``unicomp`` in its own child process, so the peak resident set size measured
(``ru_maxrss`` of the waited-for child) is that command's alone, interpreter and torch
included. The networks process large inputs in overlapping tiles (core/tiling.py), so
memory should grow far slower than the pixel count.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from unicomp.release.corpus import CORPUS

SOURCE = CORPUS / "image" / "train" / "Garden.jpg"


def measured(command: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of one child process; exits if it fails."""
    started = time.monotonic()
    with subprocess.Popen(command) as child:
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed with exit code {child.returncode}")
    return time.monotonic() - started, usage.ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="6000x4000", help="WIDTHxHEIGHT of the test photo")
    parser.add_argument("--source", type=Path, default=SOURCE, help="photo to upscale")
    parser.add_argument("--admm-iters", type=int, help="latent search budget (default: model's)")
    args = parser.parse_args(argv)

    width, height = (int(side) for side in args.size.split("x"))
    unicomp = [sys.executable, "-m", "unicomp"]
    with tempfile.TemporaryDirectory() as scratch:
        photo = Path(scratch) / "big.png"
        Image.open(args.source).convert("RGB").resize(
            (width, height), Image.Resampling.BICUBIC
        ).save(photo, compress_level=1)
        search = [] if args.admm_iters is None else ["--admm-iters", str(args.admm_iters)]
        encode = measured([*unicomp, "compress", "--quiet", str(photo), *search])
        compressed = photo.with_suffix(".ucz")
        decode = measured(
            [*unicomp, "decompress", "--quiet", str(compressed), "-o", f"{scratch}/o.png"]
        )
        bpp = 8 * compressed.stat().st_size / (width * height)
    print(f"{width}x{height} ({width * height / 1e6:.1f} MP), {bpp:.4f} bpp")
    print(f"compress:   {encode[0]:7.1f} s, peak RSS {encode[1]:7.0f} MiB")
    print(f"decompress: {decode[0]:7.1f} s, peak RSS {decode[1]:7.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

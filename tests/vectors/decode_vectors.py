"""Decode every committed vector in a fresh process, as tests/test_vectors.py asks under
each kernel setting (the environment it is started with).

    python tests/vectors/decode_vectors.py OUT [--threads N]

Writes ``OUT/digests.json`` (case → digests) and ``OUT/<case>.npy`` (decoded samples).
``--threads`` sets torch's thread count first, which decoding must not depend on.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vector_cases import CASES, VECTORS, decode  # first: importing it pins the kernels

# isort: split
import numpy as np
import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    digests = {}
    for case in CASES:
        digests[case.name], samples = decode(case, VECTORS / f"{case.name}.ucz", args.out)
        np.save(args.out / f"{case.name}.npy", samples)
    (args.out / "digests.json").write_text(json.dumps(digests, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

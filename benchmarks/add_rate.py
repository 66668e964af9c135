"""Give a released model one more rate label, calibrated from one of its points, as a
new model (unicomp/release/recipe.py, ``add_rate``).

    .venv/bin/python benchmarks/add_rate.py --modality image \\
        --model unicomp/weights/image-v2.json --label 0.03bpp --start 0.06bpp \\
        --name image-v2.1 --weights ~/.cache/unicomp/release/image-v2.1

Calibration and generator tuning use the corpus's train split (``--data``), as an
export's do.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from pathlib import Path

import torch

from unicomp.release.corpus import CORPUS
from unicomp.release.recipe import add_rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modality", choices=["image", "speech"], required=True)
    parser.add_argument("--model", type=Path, required=True, help="the released model's card")
    parser.add_argument("--label", required=True, help="the rate to add, e.g. 0.03bpp")
    parser.add_argument("--start", required=True, help="the point it is calibrated from")
    parser.add_argument("--name", required=True, help="the new model's name")
    parser.add_argument("--weights", type=Path, required=True, help="folder to write it into")
    parser.add_argument("--data", type=Path, help="train split (default: the corpus's)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recipe = importlib.import_module(f"unicomp.release.{args.modality}").RECIPE
    command = shlex.join(["python", "benchmarks/add_rate.py", *sys.argv[1:]])
    data = args.data or CORPUS / args.modality / "train"
    card = add_rate(
        recipe, args.model, args.label, args.start, args.name, data, args.weights, command
    )
    print(f"saved {card}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Code every signal of a folder at one rate with one or more models, and print each
signal's real rate and quality and the means: a rate the bench's sweep does not land on
(``unicomp bench`` sweeps each model's own range, so two models' sweeps may differ).

    .venv/bin/python benchmarks/at_rate.py --modality image --rate 0.06 \\
        --data ~/.cache/unicomp/corpus/image/evaluate \\
        --model unicomp/weights/image-v2.json --model unicomp/weights/image-v2.1.json

Encoding runs on one torch thread at the default effort, as the bench's "unicomp" does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from unicomp.api import load_codec
from unicomp.bench.summary import finite_mean
from unicomp.core.data import find_files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modality", required=True)
    parser.add_argument("--data", type=Path, required=True, help="folder of signals")
    parser.add_argument("--rate", type=float, required=True, help="in the modality's unit")
    parser.add_argument("--model", action="append", required=True, help="model card or name")
    args = parser.parse_args()
    torch.set_num_threads(1)
    codecs = {model: load_codec(model, args.modality) for model in args.model}
    modality = next(iter(codecs.values())).modality
    rows: dict[str, list[dict[str, float]]] = {model: [] for model in codecs}
    for path in find_files(modality, args.data):
        signal = modality.load(path)
        for model, codec in codecs.items():
            data, report = codec.encode(signal, rate=args.rate)
            row = {"rate": modality.rate(8 * len(data), signal)}
            row.update(modality.metrics(signal, codec.decode(data)))
            rows[model].append(row)
            scores = "  ".join(f"{k} {v:.4g}" for k, v in row.items())
            print(f"{path.name:>24}  {codec.name:>12}  {scores}  ({report.operating_point})")
    for model, coded in rows.items():
        means = {key: finite_mean(row[key] for row in coded) for key in coded[0]}
        print(f"mean {codecs[model].name}: " + "  ".join(f"{k} {v:.4g}" for k, v in means.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What entropy tables of their own would save narrowband speech files (issue 18, item 3).

    .venv/bin/python benchmarks/narrowband_tables.py --fit ~/.cache/unicomp/nb-fit \\
        --test ~/.cache/unicomp/tune-nb
    .venv/bin/python benchmarks/narrowband_tables.py --fit ~/.cache/unicomp/wb-fit \\
        --test ~/.cache/unicomp/tune-wb      # the control: wideband copies of the same clips

Codes every clip of ``--fit`` and ``--test`` at each rate, counts the context statistics
of the ``--fit`` files' indices into one set of context tables, and prints the bits the
``--test`` files' indices cost under their own points' tables (trained on the wideband
training crops) and under the counted ones. Run on narrowband clips and on wideband
copies of the same clips: what the narrowband run saves beyond the wideband one is what
tables conditioned on the input rate would buy. The indices stay those the search chose
under the model's own tables, so this is a first-order estimate.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from unicomp.api import load_codec
from unicomp.core import context_coding
from unicomp.core.codec import Codec
from unicomp.core.points import OperatingPoint


def coded_indices(
    codec: Codec, folder: Path, rate: float
) -> list[tuple[OperatingPoint, torch.Tensor]]:
    """The point and the indices of every clip in ``folder`` coded at ``rate``."""
    coded = []
    for clip in sorted(folder.glob("*.wav")):
        data, _ = codec.encode(codec.modality.load(clip), rate=rate)
        header, indices = codec.decode_indices(data)
        coded.append((codec.check_header(header), indices))
    return coded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fit", type=Path, required=True, help="clips whose indices are counted")
    parser.add_argument("--test", type=Path, required=True, help="clips whose bits are compared")
    parser.add_argument("--model", help="speech model name or card (default: the bundled one)")
    parser.add_argument("--rates", nargs="+", type=float, default=[1.0, 2.0], help="kbit/s")
    args = parser.parse_args(argv)
    codec = load_codec(modality="speech", model=args.model)
    symbols = codec.model.quantizer.num_centers
    for rate in args.rates:
        fit, test = coded_indices(codec, args.fit, rate), coded_indices(codec, args.test, rate)
        counts = sum(context_coding.count_contexts(i[None], symbols).double() for _, i in fit)
        counted = context_coding.tables_from_counts(counts, fit[0][1].shape[0])
        own = sum(float(p.coder.estimate_bits(i, p.coder_tables)) for p, i in test)
        refit = sum(float(p.coder.estimate_bits(i, counted)) for p, i in test)
        print(
            f"{rate:g} kbit/s: {len(test)} test files, {own:.0f} bits under their points' "
            f"tables, {refit:.0f} under tables counted on {len(fit)} fit files "
            f"({100 * (refit / own - 1):+.1f} %)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Write the committed test vectors: small .ucz files of the bundled models.

    .venv/bin/python tests/vectors/make_vectors.py                # encode and record
    .venv/bin/python tests/vectors/make_vectors.py --keep-files   # encode new cases only

Run it only when a bundled model changes on purpose: files of the old model then stop
decoding, which tests/test_vectors.py reports. ``--keep-files`` leaves the committed
files as they are, encodes only cases that have none yet, and records what every file
decodes to: for a new case, or a deliberate change of the decoding contract's reference
kernels (docs/format.md). A case is coded at its operating point with the point's own
weight (the default point where it names none), as calibration codes. vectors.json
records, per file, the model, its weights digest and the sha256 of the file, of its
decoded index stream and of the decoded signal's samples; the samples themselves go to
``<case>.samples.npy``. Run it on a CPU with AVX2, where decoding is the reference.
Encoding runs torch on one thread, as the test suite does, so that the search is the
same on any core count.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from vector_cases import (  # first: importing it pins the kernels
    CASES,
    VECTORS,
    decode,
    sha256,
    write_input,
)

# isort: split
import numpy as np
import torch

from unicomp import api
from unicomp.plugins.manager import get_registry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--keep-files", action="store_true", help="re-record decoding, do not re-encode"
    )
    keep_files = parser.parse_args(argv).keep_files
    torch.set_num_threads(1)
    entries = []
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        for case in CASES:
            target = VECTORS / f"{case.name}.ucz"
            if not (keep_files and target.exists()):
                source = write_input(case, scratch)
                modality = get_registry().modality_for(source).name
                codec = api.load_codec(case.model, modality=modality)
                data, _ = codec.encode(codec.modality.load(source), operating_point=case.rate)
                target.write_bytes(data)
            digests, samples = decode(case, target, scratch)
            np.save(case.reference_samples, samples)
            entries.append(
                {
                    "case": case.name,
                    "file": target.name,
                    "sha256": sha256(target.read_bytes()),
                    **digests,
                }
            )
            print(f"{target.name}: {target.stat().st_size} bytes, decoding recorded", flush=True)
    (VECTORS / "vectors.json").write_text(json.dumps(entries, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

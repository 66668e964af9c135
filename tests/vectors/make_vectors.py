"""Write the committed test vectors: a small .ucz file per bundled default model.

    .venv/bin/python tests/vectors/make_vectors.py

Run it only when a bundled model changes on purpose: files of the old model then stop
decoding, which tests/test_vectors.py reports. vectors.json records, per file, the model,
its weights digest and the sha256 of the file, of its decoded index stream and of the
decoded signal's samples. Like the test suite, it runs torch on one thread: with more,
oneDNN may pick other convolution kernels, and a decoded image can then differ by one
level in a few pixels (the index stream never does).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from vector_cases import CASES, VECTORS, decoded_digests, sha256, write_input  # noqa: E402

from unicomp import api  # noqa: E402


def main() -> int:
    torch.set_num_threads(1)
    entries = []
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        for case in CASES:
            target = VECTORS / f"{case.name}.ucz"
            api.compress(write_input(case, scratch), target, rate=case.rate, overwrite=True)
            entries.append(
                {
                    "case": case.name,
                    "file": target.name,
                    "sha256": sha256(target.read_bytes()),
                    **decoded_digests(case, target, scratch),
                }
            )
            print(f"wrote {target.name}: {target.stat().st_size} bytes", flush=True)
    (VECTORS / "vectors.json").write_text(json.dumps(entries, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where the benchmark corpus lives: one folder every script reads or builds
(benchmarks/corpus.py builds it), ``$UNICOMP_CORPUS`` or else a per-user cache folder.
It holds ``{image,speech}/{train,evaluate}``."""

from __future__ import annotations

import os
from pathlib import Path

CORPUS = Path(
    os.environ.get("UNICOMP_CORPUS") or Path.home() / ".cache" / "unicomp" / "corpus"
).expanduser()

"""Pack the speech train split for a lent GPU: every voice, in FLAC, within a byte budget.

A device call carries at most 64 MiB, and the split holds ~144 minutes of 16-bit audio
(~276 MB as WAV, ~150 MB as FLAC). A lossy codec (Opus) would hold it all but would
change the log-mel targets the generator learns. So the pack keeps files whole and
lossless but not all of them: the same share of every folder, in a seeded order, so
that each voice, language and prompt kind keeps its weight in the split.

    .venv/bin/python benchmarks/speech_pack.py --out .gpu/train --budget-mib 55
"""

from __future__ import annotations

import argparse
import io
import random
import sys
from collections import defaultdict
from pathlib import Path

import soundfile as sf

from unicomp.core.data import find_files
from unicomp.modalities.speech.modality import SpeechModality
from unicomp.release.corpus import CORPUS


def flac_bytes(path: Path) -> bytes:
    """The file's samples as 16-bit FLAC, as they are (no resampling, no remixing)."""
    samples, rate = sf.read(path, dtype="int16", always_2d=True)
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def stratified_order(files: list[Path], seed: int = 0) -> list[Path]:
    """Files ordered so that any prefix holds about the same share of every folder: the
    k-th of a folder's n files (seeded order) comes at (k + 0.5) / n."""
    by_folder: dict[Path, list[Path]] = defaultdict(list)
    for path in files:
        by_folder[path.parent].append(path)
    keyed = []
    for folder in sorted(by_folder):
        members = by_folder[folder]
        random.Random(seed).shuffle(members)
        keyed += [((k + 0.5) / len(members), str(p), p) for k, p in enumerate(members)]
    return [path for _, _, path in sorted(keyed)]


def pack(data: Path, out: Path, budget: int) -> tuple[int, int, int]:
    """Write the largest stratified prefix of ``data``'s audio that fits ``budget`` bytes
    under ``out`` (same relative paths, .flac). Returns (files kept, files, bytes)."""
    files = find_files(SpeechModality(), data)
    kept = used = 0
    for path in stratified_order(files):
        encoded = flac_bytes(path)
        if used + len(encoded) > budget:
            break
        target = out / path.relative_to(data).with_suffix(".flac")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(encoded)
        kept, used = kept + 1, used + len(encoded)
    return kept, len(files), used


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=CORPUS / "speech" / "train")
    parser.add_argument("--out", type=Path, required=True, help="an empty or new folder")
    parser.add_argument("--budget-mib", type=float, required=True)
    args = parser.parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()):
        parser.error(f"{args.out} is not empty")
    kept, total, used = pack(args.data, args.out, int(args.budget_mib * 2**20))
    print(f"packed {kept} of {total} files ({used / 2**20:.1f} MiB of FLAC) into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

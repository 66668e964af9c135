"""The inputs of the committed test vectors and the digests that pin their decoding.

Shared by tests/test_vectors.py and tests/vectors/make_vectors.py. Inputs are cut from
examples/samples, small enough that the latent search always finishes well within its
time budget, so that encoding them is deterministic on any machine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from PIL import Image

from unicomp import api
from unicomp.core.codec import Codec

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "examples" / "samples"
VECTORS = Path(__file__).resolve().parent / "vectors"


@dataclass(frozen=True)
class Case:
    """One vector: how to make its input, the operating point it is coded at (None: the
    default one) and the decoded signal's samples."""

    name: str
    suffix: str
    make: Callable[[Path], None]
    samples: Callable[[Any], np.ndarray]
    rate: str | None = None


def _photo_crop(path: Path) -> None:
    Image.open(SAMPLES / "fruits.jpg").convert("RGB").crop((200, 150, 264, 198)).save(path)


def _speech_second(path: Path) -> None:
    wave, rate = sf.read(SAMPLES / "prompts.flac", dtype="int16")
    sf.write(path, wave[:rate], rate, subtype="PCM_16")


# Non-default points decode through their own generators (core/point_tuning.py).
CASES = (
    Case("image-64x48", ".png", _photo_crop, lambda signal: signal.pixels),
    Case("image-64x48-0.06bpp", ".png", _photo_crop, lambda signal: signal.pixels, "0.06bpp"),
    Case("speech-1s", ".wav", _speech_second, lambda signal: signal.samples),
    Case("speech-1s-1kbps", ".wav", _speech_second, lambda signal: signal.samples, "1kbps"),
)


def write_input(case: Case, folder: Path) -> Path:
    path = folder / f"{case.name}{case.suffix}"
    case.make(path)
    return path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decoded_digests(case: Case, ucz: Path, scratch: Path) -> dict[str, str]:
    """sha256 of the decoded index stream and of the decoded signal's samples as saved."""
    data = ucz.read_bytes()
    header, indices = Codec.from_pretrained(api.describe(ucz)["model"]).decode_indices(data)
    restored = api.decompress(ucz, scratch / f"{case.name}-restored{case.suffix}", overwrite=True)
    signal = api.load_codec(header.model).modality.load(restored.output)
    samples = np.ascontiguousarray(case.samples(signal))
    return {
        "model": header.model,
        "weights_digest": header.weights_digest.hex(),
        "indices_sha256": sha256(indices.to(torch.int32).numpy().tobytes()),
        "output_sha256": sha256(samples.tobytes()),
    }

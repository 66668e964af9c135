"""The inputs of the committed test vectors, the digests that pin their decoding and the
decoding contract's tolerance (docs/format.md).

Shared by tests/test_vectors.py and the scripts beside it in tests/vectors/. Inputs are cut from
examples/samples, small enough that the latent search always finishes well within its
time budget, so that encoding them is deterministic on any machine. Each vector's
reference samples are committed beside it (``<case>.samples.npy``), so that a machine
outside the exact part of the contract can still check the tolerance.
"""

from __future__ import annotations

# First: importing unicomp pins the CPU kernels (core/kernels.py) before numpy and torch load.
import unicomp  # noqa: F401

# isort: split
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

VECTORS = Path(__file__).resolve().parent
SAMPLES = VECTORS.parents[1] / "examples" / "samples"


#: Where kernels differ from the contract's reference: speech within this SNR of it.
SPEECH_MIN_SNR_DB = 40.0


def within_one_level(reference: np.ndarray, decoded: np.ndarray) -> bool:
    """Images: every value within one level of the reference decode."""
    return int(np.abs(reference.astype(np.int64) - decoded.astype(np.int64)).max()) <= 1


def snr_db(reference: np.ndarray, decoded: np.ndarray) -> float:
    """Signal-to-noise ratio of ``decoded`` against ``reference``, in dB (inf: identical)."""
    reference, error = reference.astype(np.float64), decoded.astype(np.float64) - reference
    noise = float(np.sum(error**2))
    return float("inf") if noise == 0 else 10 * np.log10(float(np.sum(reference**2)) / noise)


def within_snr(reference: np.ndarray, decoded: np.ndarray) -> bool:
    """Speech: at least :data:`SPEECH_MIN_SNR_DB` against the reference decode."""
    return snr_db(reference, decoded) >= SPEECH_MIN_SNR_DB


@dataclass(frozen=True)
class Case:
    """One vector: how to make its input, the operating point it is coded at (None: the
    default one), the decoded signal's samples, how far other kernels may move them, and
    the model that codes it (None: the modality's default)."""

    name: str
    suffix: str
    make: Callable[[Path], None]
    samples: Callable[[Any], np.ndarray]
    tolerance: Callable[[np.ndarray, np.ndarray], bool]
    rate: str | None = None
    model: str | None = None

    @property
    def reference_samples(self) -> Path:
        """The committed samples of the reference decode."""
        return VECTORS / f"{self.name}.samples.npy"


def _photo_crop(path: Path) -> None:
    Image.open(SAMPLES / "fruits.jpg").convert("RGB").crop((200, 150, 264, 198)).save(path)


def _photo_256(path: Path) -> None:
    """Large enough that a file at 0.25 bpp has bits for a coarse correction."""
    Image.open(SAMPLES / "fruits.jpg").convert("RGB").crop((100, 100, 356, 292)).save(path)


def _speech_second(path: Path) -> None:
    wave, rate = sf.read(SAMPLES / "prompts.flac", dtype="int16")
    sf.write(path, wave[:rate], rate, subtype="PCM_16")


# Non-default points decode through their own generators (core/point_tuning.py).
def _pixels(signal: Any) -> np.ndarray:
    return signal.pixels


def _samples(signal: Any) -> np.ndarray:
    return signal.samples


def _image_v2(name: str, make: Callable[[Path], None], rate: str | None = None) -> Case:
    """A PNG vector of image-v2, decoded within one level."""
    return Case(name, ".png", make, _pixels, within_one_level, rate, "image-v2")


CASES = (
    # image-v1, the default image model before image-v2: its files keep decoding.
    Case("image-64x48", ".png", _photo_crop, _pixels, within_one_level, model="image-v1"),
    Case(
        "image-64x48-0.06bpp", ".png", _photo_crop, _pixels, within_one_level, "0.06bpp", "image-v1"
    ),
    Case(
        "image-256x192-refined",
        ".png",
        _photo_256,
        _pixels,
        within_one_level,
        "0.25bpp",
        "image-v1",
    ),
    # image-v2, the default image model before image-v2.1: its files keep decoding.
    _image_v2("image-v2-64x48", _photo_crop),
    _image_v2("image-v2-64x48-0.06bpp", _photo_crop, "0.06bpp"),
    _image_v2("image-v2-256x192-0.25bpp", _photo_256, "0.25bpp"),
    # speech-v1, the default speech model before speech-v2: its files keep decoding.
    Case("speech-1s", ".wav", _speech_second, _samples, within_snr, model="speech-v1"),
    Case("speech-1s-1kbps", ".wav", _speech_second, _samples, within_snr, "1kbps", "speech-v1"),
    # These two were written before files asked for the speech post-filter (side info
    # "pf"), so they pin the decoding of files without it; make_vectors.py --keep-files
    # keeps them so. The next case is the same input written since, with "pf".
    Case("speech-v2-1s", ".wav", _speech_second, _samples, within_snr),
    Case("speech-v2-1s-1kbps", ".wav", _speech_second, _samples, within_snr, "1kbps"),
    Case("speech-v2-1s-postfilter", ".wav", _speech_second, _samples, within_snr),
    # Every file above is of format version 1 or 2; these two are of version 3 (written
    # since 2026-12-02: the coder in a byte, a refinement length in every file), with
    # and without a refinement section.
    Case("speech-v2-1s-format3", ".wav", _speech_second, _samples, within_snr),
    _image_v2("image-v2-256x192-0.25bpp-format3", _photo_256, "0.25bpp"),
    # image-v2.1 (image-v2 with a point at 0.03 bpp): its new point.
    Case("image-v2.1-256x192-0.03bpp", ".png", _photo_256, _pixels, within_one_level, "0.03bpp"),
)


def write_input(case: Case, folder: Path) -> Path:
    path = folder / f"{case.name}{case.suffix}"
    case.make(path)
    return path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode(case: Case, ucz: Path, scratch: Path) -> tuple[dict[str, str], np.ndarray]:
    """What ``unicomp decompress`` makes of a vector: the sha256 of its decoded index
    stream and of the decoded signal's samples as saved, and those samples."""
    data = ucz.read_bytes()
    header, indices = api.load_codec(api.describe(ucz)["model"]).decode_indices(data)
    restored = api.decompress(ucz, scratch / f"{case.name}-restored{case.suffix}", overwrite=True)
    signal = api.load_codec(header.model).modality.load(restored.output)
    samples = np.ascontiguousarray(case.samples(signal))
    digests = {
        "model": header.model,
        "weights_digest": header.weights_digest.hex(),
        "indices_sha256": sha256(indices.to(torch.int32).numpy().tobytes()),
        "output_sha256": sha256(samples.tobytes()),
    }
    return digests, samples

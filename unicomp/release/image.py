"""The image recipe: how the default image model is trained and calibrated
(benchmarks/train_image.py).

Images the modality refuses (transparent ones) are left out of training and listed in
the card.

``--export`` calibrates one operating point per rate label (a rate-term weight for the
latent search's entropy-constrained projection and entropy tables fitted to it) on the
TRAIN images (never the evaluate ones) resized to typical photo size (long side 768 px),
so that real .ucz files of a subset of them meet the label, each from the trained
point that serves it best (core/calibration.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from unicomp.core.config import TrainConfig
from unicomp.core.data import CropDataset, find_files
from unicomp.errors import InputError
from unicomp.modalities.image.io import ImageSignal
from unicomp.modalities.image.modality import DEFAULT_RATE, ImageModality
from unicomp.release.recipe import Calibration, Recipe

#: Calibration images are resized so that their long side is at most this.
TYPICAL_SIDE = 768
#: How many train images the full-search correction encodes (spread over the set).
CORRECTION_IMAGES = 4


def training_set(folder: Path, train: TrainConfig) -> tuple[CropDataset, dict[str, Any]]:
    """Analysed training images, and a card entry naming those the modality refuses."""
    dataset = CropDataset.from_folder(ImageModality(), folder, train.crop)
    for name, reason in dataset.excluded.items():
        print(f"left out {name}: {reason}", flush=True)
    return dataset, {
        "folder": str(folder),
        "items": len(dataset),
        "excluded": list(dataset.excluded),
    }


def typical_size(signal: ImageSignal) -> ImageSignal:
    """The image shrunk (Lanczos) so that its long side is at most TYPICAL_SIDE."""
    factor = TYPICAL_SIDE / max(signal.height, signal.width)
    if factor >= 1:
        return signal
    size = (round(signal.width * factor), round(signal.height * factor))
    image = Image.fromarray(signal.pixels.squeeze(2) if signal.channels == 1 else signal.pixels)
    pixels = np.asarray(image.resize(size, Image.Resampling.LANCZOS))
    return ImageSignal(pixels.reshape(size[1], size[0], -1), signal.mode)


def typical_photos(modality: ImageModality, folder: Path) -> list[ImageSignal]:
    """The images of ``folder`` the modality accepts, each at :func:`typical_size`: what
    calibration and the search-settings sweep (tune_admm.py) code."""
    signals = []
    for path in find_files(modality, folder):
        try:
            signal = typical_size(modality.load(path))
            modality.analysis(signal)
        except InputError:
            continue
        signals.append(signal)
    return signals


def calibration(folder: Path) -> Calibration:
    """Every accepted train photo at typical size; a spread-out few are encoded in full."""
    signals = typical_photos(ImageModality(), folder)
    measured = signals[:: max(1, len(signals) // CORRECTION_IMAGES)][:CORRECTION_IMAGES]
    data = f"{folder} ({len(signals)} images, long side <= {TYPICAL_SIDE} px)"
    return Calibration(signals, measured, data)


RECIPE = Recipe(
    modality=ImageModality(),
    script="benchmarks/train_image.py",
    default_rate=DEFAULT_RATE,
    training_set=training_set,
    calibration=calibration,
    rate_key="mean_bpp",
)

"""The speech recipe: how speech-v1 is trained and calibrated (benchmarks/train_speech.py).

``--export`` calibrates the rate weight and entropy tables of every operating point
("2kbps", "1kbps") so that the mean real bitrate (header included) of 10 s clips cut
from the *train* split meets the label.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np

from unicomp.core.config import TrainConfig
from unicomp.core.data import CropDataset, find_files
from unicomp.modalities.speech.modality import (
    DEFAULT_RATE,
    SAMPLE_RATE,
    SpeechModality,
    SpeechSignal,
)
from unicomp.release.recipe import Calibration, Recipe

#: Calibration material: this many 10 s clips per language folder of the train split.
CLIPS_PER_FOLDER = 1
CLIP_SECONDS = 10.0
#: Telephone audio is 8 kHz: an 8 kHz copy of every Nth prompt teaches the model that
#: an empty upper band is to be kept empty, not filled in.
NARROWBAND_EVERY = 2


def training_set(folder: Path, train: TrainConfig) -> tuple[CropDataset, dict[str, Any]]:
    """Every prompt of ``folder`` as analysed, plus band-limited (8 kHz) copies of some and
    a copy of every prompt at each of ``train.speed_factors``."""
    modality, tensors = SpeechModality(), []
    for index, path in enumerate(find_files(modality, folder)):
        signal = modality.load(path)
        tensors.append(modality.analysis(signal)[0])
        if index % NARROWBAND_EVERY == 0:
            tensors.append(modality.analysis(narrowband(signal))[0])
        for factor in train.speed_factors:
            tensors.append(modality.analysis(faster(signal, factor))[0])
    dataset = CropDataset(tensors, train.crop)
    card: dict[str, Any] = {
        "folder": str(folder),
        "items": len(dataset),
        "narrowband_copies": f"an 8 kHz copy of 1 prompt in {NARROWBAND_EVERY}",
    }
    if train.speed_factors:
        card["speed_copies"] = f"a copy of every prompt at speeds {train.speed_factors}"
    return dataset, card


def narrowband(signal: SpeechSignal) -> SpeechSignal:
    """The signal as an 8 kHz recording (telephone band) would carry it."""
    return SpeechSignal(signal.mono(8000)[:, None], 8000)


def faster(signal: SpeechSignal, factor: float) -> SpeechSignal:
    """The signal played ``factor`` times faster: shorter, with pitch and formants ``factor``
    times higher, as a speaker with a shorter vocal tract would sound (the speed
    perturbation of Ko et al., Interspeech 2015)."""
    slowed_rate = round(signal.sample_rate / factor)
    return SpeechSignal(signal.mono(slowed_rate)[:, None], signal.sample_rate)


def train_clips(data_dir: Path, per_folder: int = CLIPS_PER_FOLDER) -> list[SpeechSignal]:
    """10 s clips of consecutive prompts (seeded order) from each folder of the train split,
    each also as an 8 kHz copy: inputs come at both bandwidths and code at different rates.
    """
    modality, clips, length = SpeechModality(), [], int(CLIP_SECONDS * SAMPLE_RATE)
    for folder in sorted(p for p in data_dir.iterdir() if p.is_dir()):
        files = sorted(folder.rglob("*.wav"))
        random.Random(0).shuffle(files)
        pieces: list[np.ndarray] = []
        for path in files:
            pieces.append(modality.load(path).mono(SAMPLE_RATE))
            if sum(len(p) for p in pieces) >= length * per_folder:
                break
        wave = np.concatenate(pieces).astype(np.float32)
        clips += [
            SpeechSignal(wave[start : start + length, None], SAMPLE_RATE)
            for start in range(0, len(wave) - length + 1, length)
        ]
    return clips + [narrowband(clip) for clip in clips]


def calibration(folder: Path) -> Calibration:
    """10 s train clips (half of them 8 kHz copies), every one encoded in full."""
    clips = train_clips(folder)
    data = f"{len(clips)} clips of {CLIP_SECONDS:g} s from {folder} (half are 8 kHz copies)"
    return Calibration(clips, clips, data)


RECIPE = Recipe(
    modality=SpeechModality(),
    script="benchmarks/train_speech.py",
    default_rate=DEFAULT_RATE,
    training_set=training_set,
    calibration=calibration,
    rate_key="mean_kbps",
)

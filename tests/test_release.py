"""The release code the default models are made with (unicomp/release/): where the
corpus is, what the image recipe calibrates on and what the speech recipe trains on."""

from __future__ import annotations

import dataclasses
import runpy
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from unicomp.core.config import TrainConfig
from unicomp.core.trainer import train
from unicomp.errors import UsageError
from unicomp.modalities.image.io import ImageSignal
from unicomp.modalities.speech.modality import SpeechModality, SpeechSignal
from unicomp.release import corpus
from unicomp.release.image import TYPICAL_SIDE, typical_size
from unicomp.release.speech import faster
from unicomp.release.speech import training_set as speech_training_set


def corpus_folder() -> Path:
    """The corpus constant as a fresh import computes it."""
    return runpy.run_path(corpus.__file__)["CORPUS"]


def test_corpus_is_the_environment_folder_when_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UNICOMP_CORPUS", str(tmp_path / "corpus"))
    assert corpus_folder() == tmp_path / "corpus"


def test_corpus_is_the_user_cache_folder_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UNICOMP_CORPUS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert corpus_folder() == tmp_path / ".cache" / "unicomp" / "corpus"


def test_calibration_photos_are_shrunk_to_typical_size() -> None:
    large = ImageSignal(np.zeros((600, 1000, 3), np.uint8), "RGB")
    grey = ImageSignal(np.zeros((2000, 1000, 1), np.uint8), "L")
    small = ImageSignal(np.zeros((300, 500, 3), np.uint8), "RGB")
    assert typical_size(large).pixels.shape == (461, TYPICAL_SIDE, 3)
    assert typical_size(grey).pixels.shape == (TYPICAL_SIDE, 384, 1)
    assert typical_size(small) is small


def tone(frequency: float, seconds: float, rate: int = 16000) -> SpeechSignal:
    time = np.arange(int(seconds * rate)) / rate
    return SpeechSignal((0.5 * np.sin(2 * np.pi * frequency * time))[:, None], rate)


def test_a_faster_copy_is_shorter_and_higher_at_the_same_sample_rate() -> None:
    copy = faster(tone(200.0, 1.0), 1.25)
    assert copy.sample_rate == 16000
    assert len(copy.mono()) == pytest.approx(12800, abs=2)
    spectrum = np.abs(np.fft.rfft(copy.mono()))
    peak_hz = np.argmax(spectrum) * 16000 / len(copy.mono())
    assert peak_hz == pytest.approx(250.0, abs=2.0)


def test_the_speech_training_set_adds_a_copy_of_every_prompt_per_speed(tmp_path: Path) -> None:
    for index, frequency in enumerate((150.0, 220.0, 300.0)):
        sf.write(tmp_path / f"prompt{index}.wav", tone(frequency, 0.6).mono(), 16000)
    plain, plain_card = speech_training_set(tmp_path, TrainConfig(crop=[32]))
    varied, card = speech_training_set(tmp_path, TrainConfig(crop=[32], speed_factors=[0.9, 1.1]))
    assert len(plain) == 3 + 2  # 8 kHz copies of prompts 0 and 2
    assert len(varied) == len(plain) + 3 * 2
    assert "speed_copies" in card and "speed_copies" not in plain_card
    # prompt 1 has no 8 kHz copy: itself, then its 0.9 and 1.1 copies
    original, slower, quicker = (varied.tensors[i].shape[-1] for i in (4, 5, 6))
    assert slower > original > quicker


def test_speed_factors_are_bounded_and_read_by_the_speech_recipe_only(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="speed_factors"):
        TrainConfig(speed_factors=[3.0])
    config = SpeechModality().default_config()
    config = dataclasses.replace(config, train=TrainConfig(speed_factors=[1.1]))
    with pytest.raises(UsageError, match="speed_factors"):
        train(SpeechModality(), config, tmp_path, tmp_path / "run")

"""The release code the default models are made with (unicomp/release/): where the
corpus is, and what the image recipe calibrates on."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pytest

from unicomp.modalities.image.io import ImageSignal
from unicomp.release import corpus
from unicomp.release.image import TYPICAL_SIDE, typical_size


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

"""The CompressAI baselines: trained resumably by benchmarks/train_compressai_baselines.py,
bundled as float16, and coded by the bench plugin from either place.

Tiny models (8 channels) on tiny photos, a few steps: what is checked is the machinery
(exact resume, the float16 release, checked weights, real bitstreams), not quality.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from unicomp.bench.base import BaselineError
from unicomp.modalities.image.io import ImageSignal
from unicomp.modalities.image.metrics import psnr
from unicomp.plugins.baselines.learned_image import (
    CHECKPOINT_ENV,
    ENTROPY_TABLES,
    LearnedImageCodec,
)

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "train_compressai_baselines.py"
ARCHITECTURE = "bmshj2018-hyperprior"


@pytest.fixture(scope="module")
def trainer():
    spec = importlib.util.spec_from_file_location("train_compressai_baselines", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(3)
    for index in range(3):
        y, x = np.mgrid[0:96, 0:128]
        shade = 110 + 70 * np.sin(x / (5.0 + index)) * np.cos(y / 6.0) + rng.normal(0, 5, x.shape)
        rgb = np.stack([shade, shade[::-1], 255 - shade], axis=2)
        Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(folder / f"p{index}.png")
    return folder


def train(trainer, photos: Path, folder: Path, steps: int, monkeypatch) -> Path:
    """Train the tiny model to ``steps`` into ``folder``; the path of its weights."""
    monkeypatch.setenv(CHECKPOINT_ENV, str(folder))
    args = ["--architectures", ARCHITECTURE, "--qualities", "1", "--channels", "8", "8"]
    args += ["--data", str(photos), "--crop", "64", "--batch-size", "2", "--max-downscale", "1.5"]
    args += ["--steps", str(steps), "--checkpoint-every", "1", "--log-every", "1"]
    assert trainer.main(args) == 0
    return folder / f"{ARCHITECTURE}-q1.safetensors"


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(
    trainer, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    straight = load_file(train(trainer, photos, tmp_path / "straight", 4, monkeypatch))
    halfway = train(trainer, photos, tmp_path / "resumed", 2, monkeypatch)
    halfway.unlink()  # as if the session had ended at step 2: only the state is left
    halfway.with_suffix(".json").unlink()
    resumed_path = train(trainer, photos, tmp_path / "resumed", 4, monkeypatch)
    resumed = load_file(resumed_path)
    assert json.loads(resumed_path.with_suffix(".json").read_text())["steps"] == 4
    assert resumed.keys() == straight.keys()
    assert all(torch.equal(resumed[k], straight[k]) for k in straight)
    moved = load_file(train(trainer, photos, tmp_path / "short", 2, monkeypatch))
    assert not all(torch.equal(moved[k], straight[k]) for k in straight)  # steps 3-4 count


def test_bundled_float16_models_code_real_bitstreams(
    trainer, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train(trainer, photos, tmp_path / "trained", 3, monkeypatch)
    released = tmp_path / "released"
    assert trainer.main(["--bundle", str(released)]) == 0
    weights = load_file(released / f"{ARCHITECTURE}-q1.safetensors")
    assert {v.dtype for v in weights.values() if v.is_floating_point()} == {torch.float16}
    trained_keys = load_file(tmp_path / "trained" / f"{ARCHITECTURE}-q1.safetensors").keys()
    tables = {k for k in trained_keys if k.endswith(ENTROPY_TABLES)}
    assert len(tables) == 6 and weights.keys() == trained_keys - tables  # rebuilt on loading
    card = json.loads((released / f"{ARCHITECTURE}-q1.json").read_text())
    assert card["channels"] == [8, 8] and card["weights"]["dtype"] == "float16"

    monkeypatch.setenv(CHECKPOINT_ENV, str(released))
    codec = LearnedImageCodec(ARCHITECTURE)
    # The bundled qualities join the folder's: its q1 replaces the bundled one.
    assert codec.qualities[0] == 1 and codec.unavailable() is None
    assert "3 steps" in codec.description
    rgb = np.asarray(Image.open(photos / "p0.png"))[:50, :70]  # not a multiple of 16
    data = codec.encode(ImageSignal(rgb, "RGB"), 1)
    decoded = codec.decode(data, None)
    assert decoded.pixels.shape == rgb.shape
    assert 0 < len(data) < rgb.size  # entropy coded, far below raw
    assert psnr(rgb, decoded.pixels) > 5  # an image, if a poor one after 3 steps
    with pytest.raises(BaselineError, match="truncated"):
        codec.decode(data[:-1], None)

    (released / f"{ARCHITECTURE}-q1.safetensors").write_bytes(b"\0" * 64)
    with pytest.raises(BaselineError, match="sha256"):
        LearnedImageCodec(ARCHITECTURE).encode(ImageSignal(rgb, "RGB"), 1)


def test_loading_compressai_shows_the_user_no_warning_of_its_dependencies() -> None:
    """Its import pulls in torch_geometric, which warns of torch.jit.script's deprecation."""
    code = (
        "from unicomp.plugins.baselines.learned_image import build_model\n"
        "from unicomp.plugins.baselines.classic_image import _compressai_codec\n"
        "build_model('mbt2018-mean', 1, (8, 8)); _compressai_codec('WebP')\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error::FutureWarning", "-c", code], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_learning_rate_drops_tenfold_for_the_last_fifth(trainer) -> None:
    args = argparse.Namespace(learning_rate=1e-3, decay_at=0.8, steps=100)
    rates = [trainer.learning_rate_at(step, args) for step in (0, 79, 80, 99)]
    assert rates == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4])

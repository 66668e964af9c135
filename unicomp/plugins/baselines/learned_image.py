"""CompressAI's learned image codecs, with weights trained here.

No pretrained weights can be downloaded on this machine, so
``benchmarks/train_compressai_baselines.py`` trains each architecture and quality on the
same train corpus as unicomp and leaves ``<architecture>-q<quality>.safetensors`` plus
a JSON card (how it was trained, sha256 of the weights) in :func:`checkpoint_dir`. A
codec's sweep is the qualities found there; with none it is unavailable, saying so.

The bitstream is CompressAI's ``compress()`` output, boxed with what ``decompress()``
needs: the quality (which model), image size, latent shape, and each string with its
length (10 + 4n bytes in all).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from unicomp.bench.base import BaselineError, Quality
from unicomp.modalities.image.io import ImageSignal, to_tensor
from unicomp.plugins.baselines.convert import rgb8_from_tensor, rgb_signal

ARCHITECTURES = ("bmshj2018-factorized", "bmshj2018-hyperprior", "mbt2018-mean")
CHECKPOINT_ENV = "UNICOMP_BASELINE_DIR"
_HEADER = struct.Struct(">BHHHHB")
_LENGTH = struct.Struct(">I")
MAX_SIDE = 65535
_CARD_NAME = re.compile(r"-q(\d+)\.json$")


def checkpoint_dir() -> Path:
    """Where the trained baselines live: ``$UNICOMP_BASELINE_DIR`` or the user cache."""
    configured = os.environ.get(CHECKPOINT_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "unicomp" / "baselines"


def checkpoint_stem(architecture: str, quality: int) -> Path:
    """The path, without suffix, of one trained model's weights and card."""
    return checkpoint_dir() / f"{architecture}-q{quality}"


def build_model(architecture: str, quality: int) -> Any:
    """An untrained CompressAI model of ``architecture`` at ``quality`` (its channel sizes)."""
    from compressai.zoo import image_models

    return image_models[architecture](quality=quality, metric="mse", pretrained=False)


class LearnedImageCodec:
    """One CompressAI architecture; a quality is a separately trained model."""

    modality = "image"

    def __init__(self, architecture: str) -> None:
        self.name = architecture
        self._cards = _read_cards(architecture)
        self.qualities: tuple[Quality, ...] = tuple(sorted(self._cards))
        trained = ", ".join(
            f"q{q} {c.get('steps')} steps/{c.get('seconds', 0) / 60:.0f} min "
            f"{c['weights']['sha256'][:8]}"
            for q, c in sorted(self._cards.items())
        )
        self.description = (
            f"{architecture}: CompressAI {version('compressai')} architecture (MSE), "
            f"trained here: {trained or 'none'}"
        )
        self._models: dict[int, Any] = {}

    def unavailable(self) -> str | None:
        if self.qualities:
            return None
        return (
            f"no trained checkpoints {checkpoint_dir()}/{self.name}-q*.safetensors "
            "(pretrained weights cannot be downloaded here; train them with "
            "benchmarks/train_compressai_baselines.py)"
        )

    def encode(self, signal: ImageSignal, quality: Quality) -> bytes:
        model = self._model(int(quality))
        x = to_tensor(signal).unsqueeze(0)
        height, width = x.shape[-2:]
        if max(height, width) > MAX_SIDE:
            raise BaselineError(f"sides over {MAX_SIDE} px do not fit: {width}x{height}")
        multiple = model.downsampling_factor
        padded = F.pad(x, (0, -width % multiple, 0, -height % multiple), mode="replicate")
        with torch.no_grad():
            out = model.compress(padded)
        strings = [group[0] for group in out["strings"]]
        header = _HEADER.pack(int(quality), height, width, *out["shape"], len(strings))
        return header + b"".join(_LENGTH.pack(len(s)) + s for s in strings)

    def decode(self, data: bytes, reference: Any) -> ImageSignal:
        quality, height, width, shape, strings = _unpack(data)
        if quality not in self._cards:
            raise BaselineError(f"{self.name} has no trained model for quality {quality}")
        model = self._model(quality)
        with torch.no_grad():
            x_hat = model.decompress([[s] for s in strings], shape)["x_hat"]
        return rgb_signal(rgb8_from_tensor(x_hat[0, :, :height, :width]))

    def _model(self, quality: int) -> Any:
        if quality not in self._models:
            self._models[quality] = _load(self.name, quality, self._cards[quality])
        return self._models[quality]


def _read_cards(architecture: str) -> dict[int, dict[str, Any]]:
    cards = {}
    folder = checkpoint_dir()
    for path in sorted(folder.glob(f"{architecture}-q*.json")) if folder.is_dir() else []:
        match = _CARD_NAME.search(path.name)
        if match is None or not path.with_suffix(".safetensors").is_file():
            continue
        try:
            card = json.loads(path.read_text(encoding="utf-8"))
            card["weights"]["sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a card being written or damaged: that quality is simply not offered
        cards[int(match.group(1))] = card
    return cards


def _load(architecture: str, quality: int, card: dict[str, Any]) -> Any:
    """The trained model, its weights checked against the card, entropy tables rebuilt."""
    from safetensors.torch import load_file

    weights = checkpoint_stem(architecture, quality).with_suffix(".safetensors")
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    if digest != card["weights"]["sha256"]:
        raise BaselineError(f"{weights} does not match the sha256 in its card")
    model = build_model(architecture, quality)
    model.load_state_dict(load_file(str(weights)))
    model.update(force=True)
    return model.eval()


def _unpack(data: bytes) -> tuple[int, int, int, list[int], list[bytes]]:
    if len(data) < _HEADER.size:
        raise BaselineError(f"bitstream of {len(data)} bytes is shorter than its header")
    quality, height, width, rows, columns, count = _HEADER.unpack_from(data)
    offset, strings = _HEADER.size, []
    for _ in range(count):
        if offset + _LENGTH.size > len(data):
            raise BaselineError("bitstream is truncated")
        (length,) = _LENGTH.unpack_from(data, offset)
        offset += _LENGTH.size
        if offset + length > len(data):
            raise BaselineError("bitstream is truncated")
        strings.append(data[offset : offset + length])
        offset += length
    if offset != len(data):
        raise BaselineError(f"{len(data) - offset} bytes trail the bitstream")
    return quality, height, width, [rows, columns], strings

"""CompressAI's learned image codecs, with weights trained here.

No pretrained weights can be downloaded on this machine, so
``benchmarks/train_compressai_baselines.py`` trains each architecture and quality on the
same train corpus as unicomp and leaves ``<architecture>-q<quality>.safetensors`` plus
a JSON card (how it was trained, its channel counts, sha256 of the weights) in
:func:`checkpoint_dir`; the released ones are bundled, as float16, in
:data:`BUNDLED_BASELINES`. A codec's sweep is the qualities found in either (the user's
own first); with none it is unavailable, saying so.

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
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from unicomp.bench.base import BaselineError, Quality
from unicomp.modalities.image.io import ImageSignal, to_tensor
from unicomp.plugins.baselines.compressai_import import quiet_compressai_import
from unicomp.plugins.baselines.convert import rgb8_from_tensor, rgb_signal
from unicomp.weights import BUNDLED_DIR

ARCHITECTURES = ("bmshj2018-factorized", "bmshj2018-hyperprior", "mbt2018-mean")
CHECKPOINT_ENV = "UNICOMP_BASELINE_DIR"
#: The trained baselines released with unicomp (float16 weights).
BUNDLED_BASELINES = BUNDLED_DIR / "baselines"
_HEADER = struct.Struct(">BHHHHB")
_LENGTH = struct.Struct(">I")
MAX_SIDE = 65535
_CARD_NAME = re.compile(r"-q(\d+)\.json$")
#: Buffers holding the entropy coder's tables, which ``update(force=True)`` rebuilds from
#: the weights: a release leaves them out (0.8 MB of a 3.4 MB hyperprior model).
ENTROPY_TABLES = ("_quantized_cdf", "_offset", "_cdf_length")


def checkpoint_dir() -> Path:
    """Where the trained baselines live: ``$UNICOMP_BASELINE_DIR`` or the user cache."""
    configured = os.environ.get(CHECKPOINT_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "unicomp" / "baselines"


def checkpoint_stem(architecture: str, quality: int) -> Path:
    """The path, without suffix, of one trained model's weights and card."""
    return checkpoint_dir() / f"{architecture}-q{quality}"


def build_model(architecture: str, quality: int, channels: Sequence[int] | None = None) -> Any:
    """An untrained CompressAI model of ``architecture``, with ``channels`` (N, M) or, by
    default, the zoo's channel counts at ``quality``."""
    with quiet_compressai_import():
        from compressai.zoo.image import cfgs, model_architectures

    n, m = channels if channels is not None else cfgs[architecture][quality]
    return model_architectures[architecture](int(n), int(m))


@dataclass(frozen=True)
class _Trained:
    """One trained model: its card and the weights file the card vouches for."""

    card: dict[str, Any]
    weights: Path


class LearnedImageCodec:
    """One CompressAI architecture; a quality is a separately trained model."""

    modality = "image"

    def __init__(self, architecture: str) -> None:
        self.name = architecture
        self._trained = _find_trained(architecture)
        self.qualities: tuple[Quality, ...] = tuple(sorted(self._trained))
        trained = ", ".join(
            f"q{q} {t.card.get('steps')} steps/{t.card.get('seconds', 0) / 60:.0f} min "
            f"{t.card['weights']['sha256'][:8]}"
            for q, t in sorted(self._trained.items())
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
            f"no trained checkpoints {self.name}-q*.safetensors in {checkpoint_dir()} or "
            f"{BUNDLED_BASELINES} (pretrained weights cannot be downloaded here; train them "
            "with benchmarks/train_compressai_baselines.py)"
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
        if quality not in self._trained:
            raise BaselineError(f"{self.name} has no trained model for quality {quality}")
        model = self._model(quality)
        with torch.no_grad():
            x_hat = model.decompress([[s] for s in strings], shape)["x_hat"]
        return rgb_signal(rgb8_from_tensor(x_hat[0, :, :height, :width]))

    def _model(self, quality: int) -> Any:
        if quality not in self._models:
            self._models[quality] = _load(self.name, quality, self._trained[quality])
        return self._models[quality]


def _find_trained(architecture: str) -> dict[int, _Trained]:
    """The trained models of ``architecture`` by quality: the user's own (trained here)
    before the bundled ones."""
    found: dict[int, _Trained] = {}
    for folder in (checkpoint_dir(), BUNDLED_BASELINES):
        for path in sorted(folder.glob(f"{architecture}-q*.json")) if folder.is_dir() else []:
            match = _CARD_NAME.search(path.name)
            weights = path.with_suffix(".safetensors")
            if match is None or int(match.group(1)) in found or not weights.is_file():
                continue
            try:
                card = json.loads(path.read_text(encoding="utf-8"))
                card["weights"]["sha256"]
            except (OSError, ValueError, KeyError, TypeError):
                continue  # a card being written or damaged: that quality is simply not offered
            found[int(match.group(1))] = _Trained(card, weights)
    return found


def _load(architecture: str, quality: int, trained: _Trained) -> Any:
    """The trained model, its weights checked against the card and loaded as float32,
    entropy tables rebuilt."""
    from safetensors.torch import load_file

    digest = hashlib.sha256(trained.weights.read_bytes()).hexdigest()
    if digest != trained.card["weights"]["sha256"]:
        raise BaselineError(f"{trained.weights} does not match the sha256 in its card")
    model = build_model(architecture, quality, trained.card.get("channels"))
    empty_tables = {k: v for k, v in model.state_dict().items() if k.endswith(ENTROPY_TABLES)}
    state = load_file(str(trained.weights))
    weights = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    model.load_state_dict(empty_tables | weights)
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

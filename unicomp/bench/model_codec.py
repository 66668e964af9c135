"""unicomp itself as a bench codec, swept over the operating points of its models.

It satisfies the same :class:`~unicomp.bench.base.Baseline` protocol as the baselines,
so one loop measures everything the same way: the full .ucz file (header included) is
the rate, and decoding uses only those bytes.

Without ``--model``, the sweep is every operating point the modality's default model
serves: one model holds several operating points (image-v1: 0.06, 0.12 and 0.25 bpp;
speech-v1: 2 and 1 kbps), and a model card found in the model folders counts for a
rate label when ``modality.default_model(label)`` names it. With ``--model``, it is
that model's points.

"unicomp-no-admm" is the ablation: the same models and points with the latent search
off (``admm_iterations=0``), so the encoder's output is projected onto the centers and
sent as is. Its rates differ a little from the searched files', so it is compared at
equal rate (BD-quality, the table of quality at the anchor's rates).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from unicomp.api import load_codec
from unicomp.bench.base import BaselineError, Quality
from unicomp.core import container
from unicomp.core.catalog import available_models
from unicomp.core.checkpoint import point_labels, read_card
from unicomp.core.codec import Codec
from unicomp.errors import UnicompError
from unicomp.modalities.base import Modality
from unicomp.plugins.manager import Registry

NAME = "unicomp"
NO_ADMM = "unicomp-no-admm"
#: The bench's unicomp codecs and the ADMM iterations each forces (None: the model's own).
VARIANTS: dict[str, int | None] = {NAME: None, NO_ADMM: 0}
#: The sweep of a model without operating points: its default search, no rate term.
DEFAULT_POINT = "default"


class ModelCodec:
    """unicomp; a quality is an operating-point label, coded by the model that serves it."""

    def __init__(
        self, points: Mapping[str, Codec], name: str = NAME, admm_iterations: int | None = None
    ) -> None:
        self.name = name
        self._points = dict(points)
        self._admm_iterations = admm_iterations
        codecs = {id(c): c for c in self._points.values()}.values()
        self.modality = next(iter(codecs)).modality.name
        models = ", ".join(
            f"{c.name} ({c.model.card.get('training', {}).get('steps', '?')} training steps, "
            f"sha256 {c.model.digest.hex()[:12]}, {self._iterations(c)} ADMM iterations)"
            for c in codecs
        )
        devices = {str(c.device) for c in codecs} - {"cpu"}
        where = f" on {', '.join(sorted(devices))}" if devices else ""
        self.description = f"unicomp models {models}{where}"
        self.qualities: list[Quality] = _by_rate(list(self._points))

    def unavailable(self) -> str | None:
        return None

    def encode(self, signal: Any, quality: Quality) -> bytes:
        point = None if quality == DEFAULT_POINT else str(quality)
        data, _ = self._points[str(quality)].encode(signal, self._admm_iterations, point)
        return data

    def decode(self, data: bytes, reference: Any) -> Any:
        """Decode with the model the .ucz header names, as ``unicomp decompress`` would."""
        header, _ = container.unpack(data)
        for codec in self._points.values():
            if codec.name == header.model:
                return codec.decode(data)
        raise BaselineError(f"the file names model {header.model!r}, which is not loaded")

    def _iterations(self, codec: Codec) -> int:
        """The ADMM iterations this codec runs: its own setting, or the model's."""
        if self._admm_iterations is None:
            return codec.model.config.admm.iterations
        return self._admm_iterations


def model_points(codec: Codec) -> dict[str, Codec]:
    """Every operating point of one model (or its default search if it has none)."""
    labels = [p.label for p in codec.model.points if p.label is not None] or [DEFAULT_POINT]
    return dict.fromkeys(labels, codec)


def default_points(registry: Registry, modality: Modality, device: str = "cpu") -> dict[str, Codec]:
    """The operating points of the modality's default models found on this machine, run
    on ``device``.

    Raises ModelError naming the default model when none is installed.
    """
    cards: dict[str, Path] = {}
    for card_path in available_models(registry.model_dirs):
        card = read_card(card_path)
        if card["modality"] != modality.name:
            continue
        for label in point_labels(card):
            if _default_model(modality, label) == card["name"]:
                cards[label] = card_path
    if not cards:
        default = modality.default_model(None)
        return model_points(load_codec(default, registry=registry, device=device))
    loaded = {
        path: load_codec(path, registry=registry, device=device) for path in set(cards.values())
    }
    return {label: loaded[path] for label, path in cards.items()}


def _default_model(modality: Modality, label: str) -> str | None:
    try:
        return modality.default_model(label)
    except UnicompError:
        return None


def _by_rate(labels: list[str]) -> list[Quality]:
    """Labels like "0.06bpp" or "2kbps" from lowest to highest rate (else as given)."""
    numbers = [re.match(r"\d+(\.\d+)?", label) for label in labels]
    rates = [float(number.group()) for number in numbers if number is not None]
    if len(rates) != len(labels):
        return list(labels)
    return [label for _, label in sorted(zip(rates, labels, strict=True))]

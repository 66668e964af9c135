"""unicomp itself as a bench codec, swept across its model's range of rates.

It satisfies the same :class:`~unicomp.bench.base.Baseline` protocol as the baselines,
so one loop measures everything the same way: the full .ucz file (header included) is
the rate, and decoding uses only those bytes.

The sweep is :data:`SWEEP_RATES` rates spaced evenly in log-rate from the model's lowest
operating point to its highest (image-v1: 0.06 to 0.25 bpp), each met per file as
``unicomp compress --rate`` meets it, so curves and Bjøntegaard figures rest on more
points than the calibrated labels. A model without calibrated points is measured at
its one default point. The model is the modality's default, or ``--model``.

Each encoder effort is its own codec, like AVIF's speeds: "unicomp" (the default
search), "unicomp-fast" (no latent search: the encoder's output, projected onto the
centers, as the ablation of the search) and "unicomp-best" (the longer search; opt-in,
as it may take a minute per photo).
"""

from __future__ import annotations

from typing import Any

from unicomp.api import load_codec
from unicomp.bench.base import BaselineError, Quality
from unicomp.core import container
from unicomp.core.codec import Codec
from unicomp.core.points import parse_rate
from unicomp.errors import UsageError
from unicomp.modalities.base import Modality
from unicomp.plugins.manager import Registry

NAME = "unicomp"
#: The bench's unicomp codecs and the encoder effort each runs.
VARIANTS: dict[str, str] = {NAME: "default", "unicomp-fast": "fast", "unicomp-best": "best"}
#: Variants a bench runs only when named in ``--codecs``.
OPT_IN = ("unicomp-best",)
#: Rates per sweep, ends included.
SWEEP_RATES = 6
#: The sweep of a model without operating points: its default search, no rate term.
DEFAULT_POINT = "default"


class ModelCodec:
    """unicomp at one effort; a quality is a rate such as "0.106bpp"."""

    def __init__(self, codec: Codec, name: str = NAME) -> None:
        if name not in VARIANTS:
            raise UsageError(f"unknown unicomp codec {name!r} (known: {', '.join(VARIANTS)})")
        self.name = name
        self.modality = codec.modality.name
        self._codec = codec
        self._effort = VARIANTS[name]
        model = codec.model
        where = f" on {codec.device}" if codec.device.type != "cpu" else ""
        self.description = (
            f"unicomp model {model.name} ({model.card.get('training', {}).get('steps', '?')} "
            f"training steps, sha256 {model.digest.hex()[:12]}), effort {self._effort}{where}"
        )
        self.qualities: list[Quality] = sweep(codec)

    def unavailable(self) -> str | None:
        return None

    def encode(self, signal: Any, quality: Quality) -> bytes:
        rate = None
        if quality != DEFAULT_POINT:
            rate = parse_rate(str(quality), self._codec.modality.rate_unit)
        data, _ = self._codec.encode(signal, rate=rate, effort=self._effort)
        return data

    def decode(self, data: bytes, reference: Any) -> Any:
        """Decode with the model the .ucz header names, as ``unicomp decompress`` would."""
        header, _ = container.unpack(data)
        if header.model != self._codec.name:
            raise BaselineError(f"the file names model {header.model!r}, which is not loaded")
        return self._codec.decode(data)


def sweep(codec: Codec) -> list[Quality]:
    """:data:`SWEEP_RATES` rates from the model's lowest to its highest, evenly spaced in
    log-rate, as rate strings in the modality's unit."""
    span = codec.rate_range
    if span is None:
        return [DEFAULT_POINT]
    low, high = span
    unit = codec.modality.rate_unit
    steps = SWEEP_RATES - 1
    rates = [low * (high / low) ** (i / steps) for i in range(SWEEP_RATES)]
    return list(dict.fromkeys(f"{rate:.3g}{unit}" for rate in rates))


def default_codec(registry: Registry, modality: Modality, device: str = "cpu") -> Codec:
    """The modality's default model, run on ``device``; ModelError when it is missing."""
    return load_codec(modality.default_model(None), registry=registry, device=device)

"""A Codec is a modality plus a trained model: signal → .ucz bytes → signal.

Encoding runs the analysis, the encoder, the ADMM latent search and the entropy coder,
then boxes the payload with a header that names the model and carries the side info.
Decoding checks that the file was made by this very model (name and weights digest)
before it decodes a single symbol.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from unicomp.core import container, entropy
from unicomp.core.admm import admm_search
from unicomp.core.checkpoint import Model, load_model, read_card
from unicomp.core.config import AdmmConfig
from unicomp.errors import FormatError, ModelError
from unicomp.modalities.base import Modality

MODEL_PATH_ENV = "UNICOMP_MODEL_PATH"


@dataclass(frozen=True)
class EncodeReport:
    """Honest bit accounting of one encoded signal."""

    total_bits: int
    header_bits: int
    payload_bits: int
    estimated_bits: float
    fixed_length_bits: float
    rate: float
    rate_unit: str
    distortion: float
    iterations: int
    seconds: float
    latent_shape: tuple[int, ...]


class Codec:
    """Encode and decode signals of one modality with one trained model."""

    def __init__(self, modality: Modality, model: Model) -> None:
        if model.config.modality != modality.name:
            raise ModelError(
                f"model {model.name!r} is for {model.config.modality!r}, not {modality.name!r}"
            )
        self.modality = modality
        self.model = model

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | os.PathLike[str], registry: Any | None = None
    ) -> Codec:
        """Load a model by name (bundled or installed) or from a card/weights path."""
        if registry is None:
            from unicomp.plugins.manager import get_registry

            registry = get_registry()
        card_path = resolve_model(name_or_path, registry.model_dirs)
        card = read_card(card_path)
        modality = registry.modality(card["modality"])
        return cls(modality, load_model(card_path, modality.build_networks))

    @property
    def name(self) -> str:
        return self.model.name

    def encode(
        self,
        signal: Any,
        admm_iterations: int | None = None,
        on_iteration: Callable[[int, int], None] | None = None,
    ) -> tuple[bytes, EncodeReport]:
        """Compress one signal; ``admm_iterations=0`` sends the hard-quantized encoder output."""
        started = time.monotonic()
        x, side_info = self.modality.analysis(signal)
        search = self._search_config(admm_iterations)
        with torch.no_grad():
            z0 = self.model.encoder(x.unsqueeze(0))
        callback = None
        if on_iteration is not None:

            def callback(iteration: int, _: torch.Tensor) -> None:
                on_iteration(iteration, search.iterations)

        result = admm_search(
            self.model.generator,
            self.modality.distortion,
            x.unsqueeze(0),
            z0,
            self.model.quantizer,
            search,
            self.model.tables.bits(),
            callback,
        )
        indices = result.indices[0]
        header = container.Header(
            modality=self.modality.name,
            model=self.model.name,
            weights_digest=self.model.digest,
            latent_shape=tuple(indices.shape),
            side_info=side_info,
        )
        payload = entropy.encode(indices, self.model.tables)
        data = container.pack(header, payload)
        total_bits = 8 * len(data)
        report = EncodeReport(
            total_bits=total_bits,
            header_bits=total_bits - 8 * len(payload),
            payload_bits=8 * len(payload),
            estimated_bits=self.model.tables.estimate_bits(indices),
            fixed_length_bits=self.model.tables.fixed_length_bits(indices.numel()),
            rate=self.modality.rate(total_bits, signal),
            rate_unit=self.modality.rate_unit,
            distortion=float(result.distortion[0]),
            iterations=result.iterations,
            seconds=time.monotonic() - started,
            latent_shape=tuple(indices.shape),
        )
        return data, report

    def decode_indices(self, data: bytes) -> tuple[container.Header, torch.Tensor]:
        """Parse a file made by this model and entropy-decode its center indices."""
        header, payload = container.unpack(data)
        self.check_header(header)
        return header, entropy.decode(payload, header.latent_shape, self.model.tables)

    def decode(self, data: bytes) -> Any:
        """Reconstruct the signal stored in ``data``."""
        header, indices = self.decode_indices(data)
        with torch.no_grad():
            x_hat = self.model.generator(self.model.quantizer.dequantize(indices).unsqueeze(0))
        return self.modality.synthesis(x_hat[0], header.side_info)

    def check_header(self, header: container.Header) -> None:
        """Refuse files of another modality or model before decoding anything."""
        if header.modality != self.modality.name:
            raise ModelError(
                f"file holds {header.modality!r} data; model {self.name!r} "
                f"decodes {self.modality.name!r}"
            )
        if header.model != self.name or header.weights_digest != self.model.digest:
            raise ModelError(
                f"file was made by model {header.model!r} "
                f"({header.weights_digest.hex()}), not by {self.name!r} "
                f"({self.model.digest.hex()})"
            )
        if header.coder != "rans16":
            raise FormatError(f"unknown entropy coder {header.coder!r}")
        if header.latent_shape[0] != self.model.tables.channels:
            raise FormatError(
                f"latent shape {header.latent_shape} does not fit model "
                f"{self.name!r} ({self.model.tables.channels} channels)"
            )

    def _search_config(self, iterations: int | None) -> AdmmConfig:
        search = self.model.config.admm
        if iterations is None:
            return search
        if iterations < 0:
            raise ValueError(f"ADMM iterations must be >= 0, got {iterations}")
        return replace(search, iterations=iterations)


def model_dirs(extra: list[Path]) -> list[Path]:
    """Where models are searched: ``UNICOMP_MODEL_PATH`` first, then plugin folders."""
    from_env = [Path(p) for p in os.environ.get(MODEL_PATH_ENV, "").split(os.pathsep) if p]
    return from_env + list(extra)


def resolve_model(name_or_path: str | os.PathLike[str], dirs: list[Path]) -> Path:
    """The card path of a model given by path (card, weights or folder) or by name."""
    path = Path(name_or_path)
    if path.suffix == ".json" and path.is_file():
        return path
    if path.suffix == ".safetensors":
        if path.with_suffix(".json").is_file():
            return path.with_suffix(".json")
        raise ModelError(f"no model card {path.with_suffix('.json')} beside {path}")
    if path.is_dir():
        cards = sorted(path.glob("*.json"))
        cards = [c for c in cards if c.with_suffix(".safetensors").is_file()]
        if len(cards) != 1:
            raise ModelError(f"{path} holds {len(cards)} models; name one card")
        return cards[0]
    name = str(name_or_path)
    for directory in model_dirs(dirs):
        candidate = directory / f"{name}.json"
        if candidate.is_file():
            return candidate
    searched = ", ".join(str(d) for d in model_dirs(dirs)) or "nowhere"
    raise ModelError(f"model {name!r} not found (searched {searched})")


def available_models(dirs: list[Path]) -> list[Path]:
    """Every model card in the search folders, first occurrence of a name wins."""
    seen: dict[str, Path] = {}
    for directory in model_dirs(dirs):
        for card in sorted(directory.glob("*.json")):
            if card.with_suffix(".safetensors").is_file():
                seen.setdefault(card.stem, card)
    return list(seen.values())

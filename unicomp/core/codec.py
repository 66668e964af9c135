"""A Codec is a modality plus a trained model: signal → .ucz bytes → signal.

Encoding runs the analysis, the encoder, the ADMM latent search and the entropy coder,
then boxes the payload with a header that names the model and carries the side info.
Decoding checks that the file was made by this very model (name and weights digest)
before it decodes a single symbol. The networks run on the codec's device; analysis,
synthesis and the entropy coder on the CPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from unicomp.core import container, kernels
from unicomp.core.admm import admm_search
from unicomp.core.checkpoint import Model, load_model
from unicomp.core.coders import coder_field, parse_coder_field
from unicomp.core.config import AdmmConfig
from unicomp.core.modality import Modality
from unicomp.core.points import OperatingPoint
from unicomp.errors import FormatError, ModelError, UsageError


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

    def __init__(
        self, modality: Modality, model: Model, device: torch.device | None = None
    ) -> None:
        if model.config.modality != modality.name:
            raise ModelError(
                f"model {model.name!r} is for {model.config.modality!r}, not {modality.name!r}"
            )
        self.modality = modality
        self.model = model
        self.device = device or torch.device("cpu")
        for module in (model.encoder, model.quantizer, *(p.generator for p in model.points)):
            module.to(self.device)

    @classmethod
    def load(cls, card_path: Path, modality: Modality, device: torch.device | None = None) -> Codec:
        """The codec of the model whose card is at ``card_path`` (core/catalog.py finds
        cards; ``unicomp.api.load_codec`` also picks the modality and the device)."""
        return cls(modality, load_model(card_path, modality.build_networks), device)

    @property
    def name(self) -> str:
        return self.model.name

    def encode(
        self,
        signal: Any,
        admm_iterations: int | None = None,
        operating_point: str | None = None,
        on_iteration: Callable[[int, int], None] | None = None,
    ) -> tuple[bytes, EncodeReport]:
        """Compress one signal at ``operating_point`` (None: the model's default);
        ``admm_iterations=0`` sends the hard-quantized encoder output."""
        started = time.monotonic()
        point = self.model.point(operating_point)
        search = self._search_config(admm_iterations)
        x, side_info = self.modality.analysis(signal)
        x = x.unsqueeze(0).to(self.device)
        with torch.no_grad():
            z0 = self.model.encoder(x)
        callback = None
        if on_iteration is not None:

            def callback(iteration: int, _: torch.Tensor) -> None:
                on_iteration(iteration, search.iterations)

        result = admm_search(
            point.generator,
            self.modality.distortion,
            x,
            z0,
            quantizer=self.model.quantizer,
            config=search,
            rate_weight=point.rate_weight,
            bits=point.search_tables.bits().to(self.device),
            # Iterates are judged by the bits the point's coder will spend on them.
            rate=partial(_coded_bits, point),
            on_iteration=callback,
        )
        indices = result.indices[0].cpu()
        label = None if point is self.model.point() else point.label
        header = container.Header(
            modality=self.modality.name,
            model=self.model.name,
            weights_digest=self.model.digest,
            latent_shape=tuple(indices.shape),
            coder=coder_field(point.coder, label),
            side_info=side_info,
        )
        payload = point.coder.encode(indices, point.coder_tables)
        data = container.pack(header, payload)
        total_bits = 8 * len(data)
        report = EncodeReport(
            total_bits=total_bits,
            header_bits=total_bits - 8 * len(payload),
            payload_bits=8 * len(payload),
            estimated_bits=point.coder.estimate_bits(indices, point.coder_tables),
            fixed_length_bits=point.search_tables.fixed_length_bits(indices.numel()),
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
        header, _, indices = self._unpack(data)
        return header, indices

    def decode(self, data: bytes) -> Any:
        """Reconstruct the signal stored in ``data``, on the kernels and the one thread the
        decoding contract fixes (core/kernels.py), so every CPU gets the same samples."""
        header, point, indices = self._unpack(data)
        latent = self.model.quantizer.dequantize(indices.to(self.device)).unsqueeze(0)
        with torch.no_grad(), kernels.decoding_kernels(self.device.type):
            x_hat = point.generator(latent)[0].cpu()
            return self.modality.synthesis(x_hat, header.side_info)

    def check_header(self, header: container.Header) -> OperatingPoint:
        """Refuse files of another modality or model; return the operating point whose
        coder, tables and generator decode it."""
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
        coder, label = parse_coder_field(header.coder)
        try:
            point = self.model.point(label)
        except UsageError:
            point = None
        default = self.model.point()
        # One spelling per point: the default point's files name no label.
        if point is None or coder != point.coder.name or (label and point is default):
            raise FormatError(f"unknown entropy coder {header.coder!r} for model {self.name!r}")
        channels, rank = point.search_tables.channels, self.latent_rank
        if header.latent_shape[0] != channels or len(header.latent_shape) != rank:
            raise FormatError(
                f"latent shape {header.latent_shape} does not fit model "
                f"{self.name!r} ({channels} channels, {rank} axes)"
            )
        return point

    @property
    def latent_rank(self) -> int:
        """Channels plus one axis per signal axis, which training crops cover one each."""
        return 1 + len(self.model.config.train.crop)

    def _unpack(self, data: bytes) -> tuple[container.Header, OperatingPoint, torch.Tensor]:
        """The header, the operating point that decodes the file, and its indices."""
        header, payload = container.unpack(data)
        point = self.check_header(header)
        return header, point, point.coder.decode(payload, header.latent_shape, point.coder_tables)

    def _search_config(self, iterations: int | None) -> AdmmConfig:
        search = self.model.config.admm
        if iterations is not None:
            if iterations < 0:
                raise UsageError(f"ADMM iterations must be >= 0, got {iterations}")
            search = replace(search, iterations=iterations)
        return search


def _coded_bits(point: OperatingPoint, indices: torch.Tensor) -> torch.Tensor:
    """Bits per element of each item of ``indices`` as the point's coder counts them
    (on the CPU, where the coders work), on the device of ``indices``."""
    return point.coder.bits_per_element(indices.cpu(), point.coder_tables).to(indices.device)

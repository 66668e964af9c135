"""A Codec is a modality plus a trained model: signal → .ucz bytes → signal.

Encoding runs the analysis, the encoder, the ADMM latent search and the entropy coder,
then boxes the payload with a header that names the model and carries the side info.
Decoding checks that the file was made by this very model (name and weights digest)
before it decodes a single symbol.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unicomp.core import container, context_coding, entropy, kernels
from unicomp.core.admm import admm_search
from unicomp.core.checkpoint import Model, load_model
from unicomp.core.config import AdmmConfig
from unicomp.core.modality import Modality
from unicomp.errors import FormatError, ModelError, UsageError

#: Header coder names: per-channel tables, or tables chosen by neighbouring indices.
PER_CHANNEL, CONTEXT = "rans16", "rans16ctx"
CODERS = {PER_CHANNEL: entropy, CONTEXT: context_coding}


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
    def load(cls, card_path: Path, modality: Modality) -> Codec:
        """The codec of the model whose card is at ``card_path`` (core/catalog.py finds
        cards; ``unicomp.api.load_codec`` also picks the modality)."""
        return cls(modality, load_model(card_path, modality.build_networks))

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
        """Compress one signal; ``admm_iterations=0`` sends the hard-quantized encoder output."""
        started = time.monotonic()
        x, side_info = self.modality.analysis(signal)
        search = self._search_config(admm_iterations, operating_point)
        table_key = operating_point if operating_point in self.model.point_tables else None
        tables = self._tables(table_key)
        coder, coder_tables = self._coder(table_key)
        with torch.no_grad():
            z0 = self.model.encoder(x.unsqueeze(0))
        callback = None
        if on_iteration is not None:

            def callback(iteration: int, _: torch.Tensor) -> None:
                on_iteration(iteration, search.iterations)

        result = admm_search(
            self._generator(table_key),
            self.modality.distortion,
            x.unsqueeze(0),
            z0,
            self.model.quantizer,
            search,
            tables.bits(),
            callback,
            # Per-channel files cost what the search's own per-channel count says.
            partial(context_coding.bits_per_element, tables=coder_tables)
            if coder == CONTEXT
            else None,
        )
        indices = result.indices[0]
        header = container.Header(
            modality=self.modality.name,
            model=self.model.name,
            weights_digest=self.model.digest,
            latent_shape=tuple(indices.shape),
            coder=coder if table_key is None else f"{coder}:{table_key}",
            side_info=side_info,
        )
        payload = CODERS[coder].encode(indices, coder_tables)
        data = container.pack(header, payload)
        total_bits = 8 * len(data)
        report = EncodeReport(
            total_bits=total_bits,
            header_bits=total_bits - 8 * len(payload),
            payload_bits=8 * len(payload),
            estimated_bits=CODERS[coder].estimate_bits(indices, coder_tables),
            fixed_length_bits=tables.fixed_length_bits(indices.numel()),
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
        coder, tables = self.check_header(header)
        return header, CODERS[coder].decode(payload, header.latent_shape, tables)

    def decode(self, data: bytes) -> Any:
        """Reconstruct the signal stored in ``data``, on the kernels and the one thread the
        decoding contract fixes (core/kernels.py), so every machine gets the same samples."""
        header, indices = self.decode_indices(data)
        point = header.coder.partition(":")[2] or None
        with torch.no_grad(), kernels.decoding_threads():
            x_hat = self._generator(point)(self.model.quantizer.dequantize(indices).unsqueeze(0))
            return self.modality.synthesis(x_hat[0], header.side_info)

    def check_header(self, header: container.Header) -> tuple[str, entropy.EntropyTables]:
        """Refuse files of another modality or model; return the coder and tables that
        decode it."""
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
        coder, colon, point = header.coder.partition(":")
        if (colon and point not in self.model.point_tables) or (
            coder != self._coder(point or None)[0]
        ):
            raise FormatError(f"unknown entropy coder {header.coder!r} for model {self.name!r}")
        channels, rank = self.model.tables.channels, self.latent_rank
        if header.latent_shape[0] != channels or len(header.latent_shape) != rank:
            raise FormatError(
                f"latent shape {header.latent_shape} does not fit model "
                f"{self.name!r} ({channels} channels, {rank} axes)"
            )
        return self._coder(point or None)

    @property
    def latent_rank(self) -> int:
        """Channels plus one axis per signal axis, which training crops cover one each."""
        return 1 + len(self.model.config.train.crop)

    def _tables(self, operating_point: str | None) -> entropy.EntropyTables:
        """Tables fitted to the operating point's indices, or the training statistics."""
        if operating_point is None:
            return self.model.tables
        return self.model.point_tables[operating_point]

    def _coder(self, operating_point: str | None) -> tuple[str, entropy.EntropyTables]:
        """The coder of the operating point's files and its tables: context tables
        (core/context_coding.py) where the model has them, else per-channel ones."""
        context_tables = self.model.context_tables.get(operating_point or "")
        if context_tables is not None:
            return CONTEXT, context_tables
        return PER_CHANNEL, self._tables(operating_point)

    def _generator(self, operating_point: str | None) -> nn.Module:
        """The operating point's own generator if it has one, else the model's."""
        return self.model.point_generators.get(operating_point or "", self.model.generator)

    def _search_config(self, iterations: int | None, operating_point: str | None) -> AdmmConfig:
        search = self.model.config.admm
        if operating_point is not None:
            points = self.model.config.operating_points
            if operating_point not in points:
                known = ", ".join(sorted(points)) or "none"
                raise UsageError(
                    f"model {self.name!r} has no operating point {operating_point!r} "
                    f"(known: {known})"
                )
            search = replace(search, rate_weight=points[operating_point])
        if iterations is not None:
            if iterations < 0:
                raise UsageError(f"ADMM iterations must be >= 0, got {iterations}")
            search = replace(search, iterations=iterations)
        return search

"""A Codec is a modality plus a trained model: signal → .ucz bytes → signal.

Encoding runs the analysis, the encoder, the latent search and the entropy coder, then
boxes the payload with a header that names the model and carries the side info, and
with the model's coarse correction of the decode where it has one (core/refinement.py).
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

from unicomp.core import container, kernels, refinement
from unicomp.core.admm import project
from unicomp.core.checkpoint import Model, load_model
from unicomp.core.coders import coder_field, parse_coder_field
from unicomp.core.config import RefinementConfig
from unicomp.core.file_rate import OutOfReach, climb, fit_weight, rungs, start_weight, window
from unicomp.core.modality import Modality, SideInfo, search_distortion, signal_size
from unicomp.core.points import OperatingPoint, parse_rate, rate_range
from unicomp.core.search import SEARCHES
from unicomp.errors import FormatError, InputError, ModelError, UsageError


@dataclass(frozen=True)
class EncodeReport:
    """Honest bit accounting of one encoded signal, and what the encoder did for it.

    ``total_bits`` are the header's (every byte but the payload and the correction: the
    framing too), the payload's and the correction's. ``target_rate`` is the rate asked
    for (None: coded at an operating point's own weight); ``rate_trials`` and
    ``rate_seconds`` are what meeting it cost.
    """

    total_bits: int
    header_bits: int
    payload_bits: int
    estimated_bits: float
    fixed_length_bits: float
    rate: float
    rate_unit: str
    target_rate: float | None
    operating_point: str | None
    rate_weight: float
    rate_trials: int
    rate_seconds: float
    effort: str
    distortion: float
    iterations: int
    seconds: float
    latent_shape: tuple[int, ...]
    #: Bits of the file's coarse correction (0: it carries none).
    refinement_bits: int = 0


@dataclass(frozen=True)
class _Aim:
    """How one encode aims at its rate: the point and header its file gets, the
    projection's rate weight, the rates the file may have (None: any), and what
    finding them cost."""

    point: OperatingPoint
    header: container.Header
    weight: float
    window: tuple[float, float] | None = None
    trials: int = 0
    seconds: float = 0.0
    #: The rate each iterate of the search is projected back to (None: no refit).
    target: float | None = None


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

    @property
    def rate_range(self) -> tuple[float, float] | None:
        """The lowest and highest rate ``encode`` can aim at (None: the model has no
        calibrated operating points)."""
        return rate_range(self.model.points, self.modality.rate_unit)

    @property
    def default_rate(self) -> float | None:
        """The rate a file gets when none is asked: the default point's label."""
        label = self.model.point().label
        return None if label is None else parse_rate(label, self.modality.rate_unit)

    def encode(
        self,
        signal: Any,
        *,
        rate: float | None = None,
        operating_point: str | None = None,
        effort: str = "default",
        admm_iterations: int | None = None,
        on_iteration: Callable[[int, int], None] | None = None,
    ) -> tuple[bytes, EncodeReport]:
        """Compress one signal.

        With a ``rate``, the file lands at most at it and at most 3 % under it
        (core/file_rate.py); a signal too small for it raises InputError. Without one, the
        file aims at :attr:`default_rate` the same way, and a signal too small for that
        gets its smallest file instead. With an ``operating_point`` instead,
        the point's calibrated weight is used as is, so files meet its label only on
        average (calibration measures points this way). ``effort`` picks the latent
        search (:meth:`AdmmConfig.at_effort`); ``admm_iterations`` overrides its
        iteration count (0 sends the encoder's projected output).
        """
        started = time.monotonic()
        if rate is not None and operating_point is not None:
            raise UsageError("ask for a rate or for an operating point, not both")
        search = self.model.config.admm.at_effort(effort, signal_size(self.modality, signal))
        if admm_iterations is not None:
            if admm_iterations < 0:
                raise UsageError(f"ADMM iterations must be >= 0, got {admm_iterations}")
            search = replace(search, iterations=admm_iterations)
        x, side_info = self.modality.analysis(signal)
        x = x.unsqueeze(0).to(self.device)
        with torch.no_grad():
            encoded = self.model.encoder(x)
        target = self.default_rate if operating_point is None and rate is None else rate
        refining = self.model.config.refinement
        # The latent aims at its share (never below the model's range); the correction
        # gets what is left.
        share = 0.0 if refining is None else refining.share
        latent_target = None
        if target is not None:
            latent_target = target * (1.0 - share)
            if self.rate_range is not None:
                latent_target = min(target, max(latent_target, self.rate_range[0]))
        if latent_target is None:
            point = self.model.point(operating_point)
            header = self._header(point, tuple(encoded.shape[1:]), side_info)
            aim = _Aim(point, header, point.rate_weight)
        else:
            aim = self._aim(signal, encoded, side_info, latent_target, strict=rate is not None)
        point, header = aim.point, aim.header
        z0 = point.latents(encoded)
        admissible = projector = None
        if aim.window is not None:
            low, high = aim.window

            def admissible(indices: torch.Tensor) -> torch.Tensor:
                rates = [self._file_rate(header, point, q, signal) for q in indices]
                return torch.tensor([low <= r <= high for r in rates])

        if aim.target is not None:
            projector = self._refit_projector(point, header, signal, aim.target, aim.weight)

        callback = None
        if on_iteration is not None:

            def callback(iteration: int, _: torch.Tensor) -> None:
                on_iteration(iteration, search.iterations)

        result = SEARCHES[search.method](
            point.generator,
            search_distortion(self.modality, side_info),
            x,
            z0,
            quantizer=self.model.quantizer,
            config=search,
            rate_weight=aim.weight,
            bits=point.search_tables.bits().to(self.device),
            # Iterates are judged by the bits the point's coder will spend on them.
            rate=partial(_coded_bits, point),
            admissible=admissible,
            projector=projector,
            on_iteration=callback,
        )
        indices = result.indices[0].cpu()
        payload = point.coder.encode(indices, point.coder_tables)
        section = b""
        if refining is not None:
            latent_bits = 8 * len(container.pack(header, payload))
            if target is None:
                budget = share / (1.0 - share) * latent_bits
            else:
                budget = target / self.modality.rate(1, signal) - latent_bits
            section = self._refinement(x[0], result.decoded[0], int(budget), refining)
        data = container.pack(header, payload, section)
        total_bits = 8 * len(data)
        report = EncodeReport(
            total_bits=total_bits,
            header_bits=total_bits - 8 * (len(payload) + len(section)),
            payload_bits=8 * len(payload),
            estimated_bits=point.coder.estimate_bits(indices, point.coder_tables),
            fixed_length_bits=point.search_tables.fixed_length_bits(indices.numel()),
            rate=self.modality.rate(total_bits, signal),
            rate_unit=self.modality.rate_unit,
            target_rate=target,
            operating_point=point.label,
            rate_weight=aim.weight,
            rate_trials=aim.trials,
            rate_seconds=aim.seconds,
            effort=effort,
            distortion=float(result.distortion[0]),
            iterations=result.iterations,
            seconds=time.monotonic() - started,
            latent_shape=tuple(indices.shape),
            refinement_bits=8 * len(section),
        )
        return data, report

    def _refinement(
        self, x: torch.Tensor, x_hat: torch.Tensor, budget_bits: int, config: RefinementConfig
    ) -> bytes:
        """The refinement section that best corrects the decode ``x_hat`` towards ``x``
        (model space) in at most ``budget_bits`` with its length prefix; empty if none
        fits or helps."""
        prefix_bits = 8 * len(container.varint_bytes(max(budget_bits, 0) // 8))
        if budget_bits <= prefix_bits:
            return b""
        residual = x.detach().cpu() - x_hat.detach().cpu()
        chosen = refinement.choose(residual, config.cells, config.steps, budget_bits - prefix_bits)
        return b"" if chosen is None else chosen.encode()

    def _aim(
        self, signal: Any, encoded: torch.Tensor, side_info: SideInfo, target: float, strict: bool
    ) -> _Aim:
        """Aim one file at ``target`` (core/file_rate.py): climb the model's rungs to the
        highest whose file at its own weight fits, then fit the weight so that the file
        lands within the tolerance under the target. Where even the lowest rung cannot
        make a file that small, raise InputError if ``strict``, else aim at its smallest
        file."""
        started = time.monotonic()
        shape = tuple(encoded.shape[1:])
        ladder = rungs(self.model.points, target, self.modality.rate_unit, self.name)
        climbed = 0

        def own_rate(rung: int) -> float:
            nonlocal climbed
            climbed += 1
            point = self.model.point(ladder[rung])
            header = self._header(point, shape, side_info)
            latents = point.latents(encoded)
            return self._projection_rate(point, header, signal, latents, point.rate_weight)[0]

        point = self.model.point(ladder[climb(own_rate, len(ladder), target)])
        header = self._header(point, shape, side_info)
        rate_at = partial(self._projection_rate, point, header, signal, point.latents(encoded))
        try:
            fit = fit_weight(rate_at, target, start_weight(point))
            allowed, refit_to = window(target, fit), target
        except OutOfReach as error:
            fit = error.smallest
            if strict:
                unit = self.modality.rate_unit
                raise InputError(
                    f"{target:g} {unit} is out of reach for so small a signal: its smallest "
                    f"file is {fit.rate:.4g} {unit}"
                ) from None
            allowed, refit_to = (0.0, fit.rate), None
        seconds = time.monotonic() - started
        return _Aim(point, header, fit.weight, allowed, climbed + fit.trials, seconds, refit_to)

    def _projection_rate(
        self,
        point: OperatingPoint,
        header: container.Header,
        signal: Any,
        values: torch.Tensor,
        weight: float,
    ) -> tuple[float, torch.Tensor]:
        """The rate-weighted projection of ``values`` (a batch of one) at ``point``, and
        the rate of its file."""
        bits = point.search_tables.bits().to(values.device)
        indices = project(values, self.model.quantizer.centers.detach(), bits, weight)
        return self._file_rate(header, point, indices[0], signal), indices

    def _refit_projector(
        self,
        point: OperatingPoint,
        header: container.Header,
        signal: Any,
        target: float,
        weight: float,
    ) -> Callable[[torch.Tensor], torch.Tensor]:
        """The search's Z-step under rate control: each iterate projected with the
        weight that puts its file back within the tolerance under ``target``, searched
        from the previous iterate's weight."""
        current = weight

        def projector(values: torch.Tensor) -> torch.Tensor:
            nonlocal current
            rate_at = partial(self._projection_rate, point, header, signal, values)
            try:
                fit = fit_weight(rate_at, target, current)
            except OutOfReach as error:  # the search will not send it
                return error.smallest.indices
            current = fit.weight if fit.weight > 0 else current
            return fit.indices

        return projector

    def _header(
        self, point: OperatingPoint, latent_shape: tuple[int, ...], side_info: SideInfo
    ) -> container.Header:
        label = None if point is self.model.point() else point.label
        return container.Header(
            modality=self.modality.name,
            model=self.model.name,
            weights_digest=self.model.digest,
            latent_shape=latent_shape,
            coder=coder_field(point.coder, label),
            side_info=side_info,
        )

    def _file_rate(
        self, header: container.Header, point: OperatingPoint, indices: torch.Tensor, signal: Any
    ) -> float:
        """The rate of the file that codes ``indices`` (channels, *axes) under ``header``."""
        payload = point.coder.encode(indices.cpu(), point.coder_tables)
        return self.modality.rate(8 * len(container.pack(header, payload)), signal)

    def decode_indices(self, data: bytes) -> tuple[container.Header, torch.Tensor]:
        """Parse a file made by this model and entropy-decode its center indices."""
        parts, _, indices = self._unpack(data)
        return parts.header, indices

    def decode(self, data: bytes) -> Any:
        """Reconstruct the signal stored in ``data``, on the kernels and the one thread the
        decoding contract fixes (core/kernels.py), so every CPU gets the same samples."""
        parts, point, indices = self._unpack(data)
        latent = self.model.quantizer.dequantize(indices.to(self.device)).unsqueeze(0)
        with torch.no_grad(), kernels.decoding_kernels(self.device.type):
            x_hat = point.generator(latent)[0].cpu()
            if parts.refinement:
                channels, *extent = x_hat.shape
                x_hat = refinement.decode(parts.refinement, extent, channels).apply(x_hat)
            return self.modality.synthesis(x_hat, parts.header.side_info)

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

    def _unpack(self, data: bytes) -> tuple[container.Parts, OperatingPoint, torch.Tensor]:
        """The file's parts, the operating point that decodes it, and its indices."""
        parts = container.unpack_parts(data)
        point = self.check_header(parts.header)
        shape = parts.header.latent_shape
        return parts, point, point.coder.decode(parts.payload, shape, point.coder_tables)


def _coded_bits(point: OperatingPoint, indices: torch.Tensor) -> torch.Tensor:
    """Bits per element of each item of ``indices`` as the point's coder counts them
    (on the CPU, where the coders work), on the device of ``indices``."""
    return point.coder.bits_per_element(indices.cpu(), point.coder_tables).to(indices.device)

"""The Modality protocol: the only thing the core knows about a kind of signal.

A modality turns a file into a signal and a signal into a model-space tensor ``x`` of
shape ``(channels, *extent)`` (and back), builds networks that fit ``x``, and defines
the distortion the trainer and the latent search minimise. Everything else (quantizer,
search, entropy coder, file format, trainer, bench) is shared.

Optional members (a modality without them stays valid; read them through the helpers
below): ``size_unit`` and ``size(signal) -> float``, how much signal an item holds in
the unit speed is quoted per (seconds of audio, megapixels), so the bench can report
"encode seconds per second of audio" instead of only seconds per item; and
``bench_group(signal) -> str | None``, the group of items the bench also reports apart
(speech: "wideband" or "narrowband" by the file's own sample rate), because a mean over
items that behave apart hides how each kind fares; and
``search_distortion(side_info) -> Distortion``, what the latent search minimises for one
signal when that differs from ``distortion`` (speech: a narrowband file's search ignores
the bands its own sample rate cannot hold).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch
    from torch import nn

    from unicomp.core.config import ModelConfig

SideInfo = Mapping[str, int | float | str]
#: Per-item distortion of a batch: (x_hat, x) -> one value per item, lower is better.
Distortion = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]


class Networks(NamedTuple):
    """The three networks of a model: x → z, ẑ → x̂, and the critic of x̂."""

    encoder: nn.Module
    generator: nn.Module
    discriminator: nn.Module


@runtime_checkable
class Modality(Protocol):
    """A kind of signal, registered through ``unicomp_register_modalities``."""

    #: Unique name, stored in every .ucz header (e.g. "image").
    name: str
    #: File extensions it reads, lower case with the dot; the first is what it writes.
    extensions: tuple[str, ...]
    #: Unit of :meth:`rate` ("bpp", "kbps", ...).
    rate_unit: str

    def default_config(self) -> ModelConfig:
        """Networks, quantizer, search and training settings that work out of the box."""
        ...

    def default_model(self, rate: str | None) -> str:
        """Name of the model to use at ``rate``, such as "0.2bpp" (None: the default
        rate). The codec then checks that the rate lies within the model's range."""
        ...

    def load(self, path: Path) -> Any:
        """Read a file into a signal; unusable files raise InputError."""
        ...

    def save(self, signal: Any, path: Path) -> None:
        """Write a signal to exactly ``path`` (the caller handles atomic renames)."""
        ...

    def analysis(self, signal: Any) -> tuple[torch.Tensor, dict[str, int | float | str]]:
        """Signal → model-space tensor x (channels, *extent) and the side info to undo it."""
        ...

    def synthesis(self, x: torch.Tensor, side_info: SideInfo) -> Any:
        """Model-space tensor x̂ and side info → signal; bad side info raises FormatError."""
        ...

    def build_networks(self, network: Mapping[str, Any]) -> Networks:
        """Build encoder, generator and discriminator from the ``network`` config."""
        ...

    def distortion(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Per-item differentiable distortion, shape (batch,): trained and searched on."""
        ...

    def metrics(self, reference: Any, decoded: Any) -> dict[str, float]:
        """Quality of a decoded signal against its reference, as the field reports it."""
        ...

    def rate(self, bits: int, signal: Any) -> float:
        """A bit count expressed in :attr:`rate_unit` for this signal."""
        ...


def size_unit(modality: Modality) -> str | None:
    """The unit of the optional ``modality.size``, or None when the modality has none."""
    unit = getattr(modality, "size_unit", None)
    return unit if unit is not None and callable(getattr(modality, "size", None)) else None


def signal_size(modality: Modality, signal: Any) -> float | None:
    """How much signal ``signal`` holds, in :func:`size_unit` (None if it has no unit)."""
    size = getattr(modality, "size", None)  # optional: not part of the protocol
    if size_unit(modality) is None or size is None:
        return None
    return float(size(signal))


def bench_group(modality: Modality, signal: Any) -> str | None:
    """The group the bench also reports ``signal`` in, or None (the modality has none)."""
    group = getattr(modality, "bench_group", None)  # optional: not part of the protocol
    return group(signal) if callable(group) else None


def search_distortion(modality: Modality, side_info: SideInfo) -> Distortion:
    """The distortion the latent search minimises for the signal ``side_info`` describes:
    the modality's ``search_distortion`` where it has one, else its ``distortion``."""
    hook = getattr(modality, "search_distortion", None)  # optional: not part of the protocol
    return hook(side_info) if callable(hook) else modality.distortion

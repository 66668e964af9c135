"""The entropy coders a .ucz file can name, behind one protocol (docs/format.md, "Payload").

A coder turns a latent's center indices into payload bytes and back with integer
tables, and says what indices would cost, so that the latent search judges its iterates
by the bits the file will really spend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch

from unicomp.core.context_coding import ContextCoder
from unicomp.core.entropy import EntropyTables, PerChannelCoder
from unicomp.errors import FormatError


class Coder(Protocol):
    """What every entropy coder of center indices provides."""

    #: How the .ucz header's coder field names it.
    name: str

    def encode(self, indices: torch.Tensor, tables: EntropyTables) -> bytes:
        """The payload of ``indices`` (channels, *axes)."""
        ...

    def decode(self, payload: bytes, shape: Sequence[int], tables: EntropyTables) -> torch.Tensor:
        """Inverse of :meth:`encode`; bad payloads and shapes raise FormatError."""
        ...

    def estimate_bits(self, indices: torch.Tensor, tables: EntropyTables) -> float:
        """Ideal code length of ``indices`` (channels, *axes)."""
        ...

    def bits_per_element(self, indices: torch.Tensor, tables: EntropyTables) -> torch.Tensor:
        """Mean ideal code length per element of each item of ``indices`` (batch,
        channels, *axes), shape (batch,)."""
        ...


PER_CHANNEL: Coder = PerChannelCoder()
CONTEXT: Coder = ContextCoder()
CODERS: dict[str, Coder] = {coder.name: coder for coder in (PER_CHANNEL, CONTEXT)}


def coder_named(name: str) -> Coder:
    """The coder a header or model card names."""
    try:
        return CODERS[name]
    except KeyError:
        raise FormatError(f"unknown entropy coder {name!r}") from None


def parse_coder_field(field: str) -> tuple[str, str | None]:
    """A header's coder field as (coder name, operating point label); no label (None)
    means the model's default point. ``"rans16:"`` names the point ``""``, which no
    model has."""
    name, colon, label = field.partition(":")
    return name, label if colon else None


def coder_field(coder: Coder, label: str | None) -> str:
    """Inverse of :func:`parse_coder_field`."""
    return coder.name if label is None else f"{coder.name}:{label}"

"""What a baseline codec and an extra metric must provide to join the bench."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from unicomp.errors import UnicompError

#: A point of a rate sweep: a number (JPEG quality, Opus kbit/s) or a label ("700C").
Quality = float | str


class BaselineError(UnicompError):
    """A baseline failed on one signal (its tool crashed, the input does not fit it).

    The bench records the message for that item and carries on with the others.
    """


@runtime_checkable
class Baseline(Protocol):
    """A codec unicomp is compared with, registered through ``unicomp_register_baselines``."""

    #: Unique name used on the command line (e.g. "webp", "codec2").
    name: str
    #: Name of the modality whose signals it codes.
    modality: str
    #: One line for reports and the JSON ``description``: implementation and version.
    description: str

    @property
    def qualities(self) -> Sequence[Quality]:
        """The quality settings a rate sweep runs over, from lowest to highest rate."""
        ...

    def unavailable(self) -> str | None:
        """Why the codec cannot run here (a missing tool or checkpoint), or None.

        The bench skips an unavailable codec and prints this reason instead of failing.
        """
        ...

    def encode(self, signal: Any, quality: Quality) -> bytes:
        """The complete bitstream for ``signal``: its length is the rate that is reported."""
        ...

    def decode(self, data: bytes, reference: Any) -> Any:
        """Decode ``data``; ``reference`` supplies only what the format leaves implicit."""
        ...


@dataclass(frozen=True)
class Metric:
    """An extra quality measure, registered through ``unicomp_register_metrics``."""

    name: str
    modality: str
    #: ``compute(reference, decoded) -> value``; ``higher_is_better`` orients BD metrics.
    compute: Callable[[Any, Any], float]
    higher_is_better: bool = True

"""unicomp: generative signal compression for speech, images and plug-in modalities.

The public API is re-exported here; it is imported lazily so that ``unicomp --version``
and ``unicomp plugins`` do not pay for torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from unicomp.core import kernels

# Before anything imports torch or numpy: the kernels they choose decide decoded samples.
kernels.pin()

__version__ = "0.1.0"
__all__ = ["__version__", "compress", "decompress", "load_codec"]

if TYPE_CHECKING:
    from unicomp.api import compress, decompress, load_codec


def __getattr__(name: str) -> Any:
    if name in ("compress", "decompress", "load_codec"):
        from unicomp import api

        return getattr(api, name)
    raise AttributeError(f"module 'unicomp' has no attribute {name!r}")

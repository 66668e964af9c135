"""Importing CompressAI without its dependencies' noise."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_compressai_import() -> Iterator[None]:
    """CompressAI's package import pulls in torch_geometric, which calls the deprecated
    ``torch.jit.script`` as it loads: a FutureWarning on every bench run that neither the
    user nor unicomp can act on. Only that warning is hidden."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning
        )
        yield

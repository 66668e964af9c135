"""The Modality protocol for plugin authors; it lives in the core (core/modality.py),
which builds everything on it without knowing any concrete modality."""

from unicomp.core.modality import (
    Distortion,
    Modality,
    Networks,
    SideInfo,
    bench_group,
    signal_size,
    size_unit,
)

__all__ = [
    "Distortion",
    "Modality",
    "Networks",
    "SideInfo",
    "bench_group",
    "signal_size",
    "size_unit",
]

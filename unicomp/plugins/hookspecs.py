"""The hooks a unicomp plugin may implement: the reference for plugin authors.

Each hook returns a list; pluggy gathers the lists of every plugin. Built-in modalities
and baselines use these same hooks, so a third-party plugin has exactly their powers.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

from unicomp.plugins import PROJECT_NAME

if TYPE_CHECKING:
    from unicomp.bench.base import Baseline, Metric
    from unicomp.modalities.base import Modality

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


@hookspec
def unicomp_register_modalities() -> list[Modality]:
    """Return the modalities this plugin provides.

    Each item must satisfy :class:`unicomp.modalities.base.Modality`. Names are unique
    across all plugins: two plugins registering the same name is an error naming both.
    """


@hookspec
def unicomp_register_baselines() -> list[Baseline]:
    """Return baseline codecs for ``unicomp bench`` (:class:`unicomp.bench.base.Baseline`).

    A baseline whose external tool is missing should still be returned; the bench
    reports it as unavailable with the reason instead of failing.
    """


@hookspec
def unicomp_register_metrics() -> list[Metric]:
    """Return extra quality metrics (:class:`unicomp.bench.base.Metric`) for the bench."""


@hookspec
def unicomp_model_dirs() -> list[Path]:
    """Return folders holding model cards (``*.json`` beside ``*.safetensors``).

    ``unicomp decompress`` searches them, after the bundled models, for the model a
    .ucz header names; a plugin can thus ship the models for its modality.
    """

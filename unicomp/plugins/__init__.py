"""Plugin system: third parties (and the built-ins) add modalities, baselines and metrics.

A plugin is any object or module with functions marked ``@hookimpl``; a distribution
exposes it through the ``unicomp`` entry-point group.
"""

import pluggy

PROJECT_NAME = "unicomp"

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

__all__ = ["PROJECT_NAME", "hookimpl"]

"""The bundled default models, offered to the model search as a built-in plugin."""

from pathlib import Path

from unicomp.plugins import hookimpl

BUNDLED_DIR = Path(__file__).parent


@hookimpl
def unicomp_model_dirs() -> list[Path]:
    """Bundled model cards live beside this module."""
    return [BUNDLED_DIR]

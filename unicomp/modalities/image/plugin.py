"""Registers the image modality as a built-in plugin, through the same hook as third parties."""

from unicomp.modalities.image.modality import ImageModality
from unicomp.plugins import hookimpl


@hookimpl
def unicomp_register_modalities() -> list[ImageModality]:
    """One modality: still images."""
    return [ImageModality()]

"""The built-in speech modality, registered through the same hook as any plugin."""

from unicomp.modalities.speech.modality import SpeechModality
from unicomp.plugins import hookimpl


@hookimpl
def unicomp_register_modalities() -> list[SpeechModality]:
    """One modality: speech in WAV, FLAC or OGG files."""
    return [SpeechModality()]

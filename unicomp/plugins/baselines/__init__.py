"""The built-in baseline codecs, registered through the same hook as any plugin.

Images: JPEG, WebP, JPEG 2000 (CompressAI's bench codecs), AVIF (Pillow) and
CompressAI's learned models trained here. Speech: Codec2, Opus, and the mel + PGHI
ceiling. A codec whose tool or checkpoint is missing is still registered; the bench
reports it as unavailable with the reason.
"""

from __future__ import annotations

from unicomp.bench.base import Baseline
from unicomp.plugins import hookimpl


@hookimpl
def unicomp_register_baselines() -> list[Baseline]:
    """Every built-in baseline; heavy libraries are imported only when one runs."""
    from unicomp.plugins.baselines.classic_image import classic_image_codecs
    from unicomp.plugins.baselines.codec2 import Codec2
    from unicomp.plugins.baselines.learned_image import ARCHITECTURES, LearnedImageCodec
    from unicomp.plugins.baselines.mel_ceiling import MelCeiling
    from unicomp.plugins.baselines.opus import Opus

    return [
        *classic_image_codecs(),
        *(LearnedImageCodec(architecture) for architecture in ARCHITECTURES),
        Codec2(),
        Opus(),
        MelCeiling(),
    ]

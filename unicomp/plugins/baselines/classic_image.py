"""Classic image codecs: JPEG, WebP and JPEG 2000 as CompressAI's bench runs them; AVIF.

CompressAI 1.2.8 (``compressai.utils.bench.codecs``) codes JPEG and WebP with Pillow's
``save(format=fmt, quality=q)`` and JPEG 2000 with ffmpeg's libopenjpeg encoder; we take
the Pillow format from those classes, write the same ffmpeg command lines here (CompressAI
builds them in private methods) and do the timing, rate and metrics ourselves, the same
way for every codec. CompressAI has no AVIF class (its AV1 codec needs an aomenc build
folder), so AVIF goes through Pillow's own AVIF plugin.

compressai is imported only when a codec first encodes: it takes seconds to import,
and the registry is built on every ``unicomp`` command.
"""

from __future__ import annotations

import functools
import io
import subprocess
import tempfile
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import PIL
from PIL import Image, features

from unicomp.bench.base import Quality
from unicomp.modalities.image.io import ImageSignal
from unicomp.plugins.baselines.compressai_import import quiet_compressai_import
from unicomp.plugins.baselines.convert import rgb8, rgb_signal
from unicomp.plugins.baselines.tools import missing_tools, run_tool

JPEG_QUALITIES: tuple[Quality, ...] = (1, 3, 5, 10, 20, 35, 50, 75, 90)
WEBP_QUALITIES: tuple[Quality, ...] = (0, 5, 10, 20, 35, 50, 75, 90)
AVIF_QUALITIES: tuple[Quality, ...] = (0, 10, 20, 30, 45, 60, 75, 90)
#: ffmpeg's libopenjpeg reads ``-compression_level L`` as a 2L:1 ratio, i.e. 12/L bpp
#: of 8-bit RGB: these run from about 0.015 to 2 bpp.
JPEG2000_LEVELS: tuple[Quality, ...] = (800, 400, 200, 100, 50, 25, 12, 6)
#: How CompressAI's JPEG2000 codec starts both its ffmpeg command lines, and the
#: encoder it asks for (YUV 4:4:4).
FFMPEG = ("ffmpeg", "-loglevel", "panic", "-y")
JPEG2000_ENCODER = ("-vcodec", "jpeg2000", "-pix_fmt", "yuv444p", "-c:v", "libopenjpeg")


def _compressai() -> str:
    return f"compressai {version('compressai')}"


class PillowImageCodec:
    """A still-image format Pillow writes with a ``quality`` setting."""

    modality = "image"

    def __init__(
        self,
        name: str,
        pillow_format: str | None,
        compressai_class: str | None,
        feature: str,
        qualities: Sequence[Quality],
    ) -> None:
        self.name = name
        self.qualities = tuple(qualities)
        self._format = pillow_format
        self._compressai_class = compressai_class
        self._feature = feature
        library = features.version(feature) or "?"
        via = (
            f"CompressAI's bench codec {compressai_class} ({_compressai()})"
            if compressai_class
            else "Pillow's own plugin"
        )
        self.description = (
            f"{name}: {via}, Pillow {PIL.__version__} with {feature} {library}, quality=q"
        )

    def unavailable(self) -> str | None:
        if features.check(self._feature):
            return None
        return f"this Pillow ({PIL.__version__}) was built without {self._feature} support"

    def encode(self, signal: ImageSignal, quality: Quality) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(rgb8(signal)).save(buffer, format=self._pillow_format, quality=int(quality))
        return buffer.getvalue()

    def decode(self, data: bytes, reference: Any) -> ImageSignal:
        with Image.open(io.BytesIO(data)) as image:
            return rgb_signal(np.asarray(image.convert("RGB")))

    @functools.cached_property
    def _pillow_format(self) -> str:
        if self._compressai_class is None:
            return str(self._format)
        return str(_compressai_codec(self._compressai_class).fmt)


class Jpeg2000Codec:
    """JPEG 2000 with CompressAI's JPEG2000 command lines (ffmpeg, libopenjpeg, YUV 4:4:4)."""

    name = "jpeg2000"
    modality = "image"
    qualities = JPEG2000_LEVELS
    description = (
        "jpeg2000: CompressAI's bench codec JPEG2000 "
        f"({_compressai()}): ffmpeg libopenjpeg, yuv444p, -compression_level q (ratio 2q:1)"
    )

    def unavailable(self) -> str | None:
        missing = missing_tools(["ffmpeg"], "ffmpeg")
        if missing is not None:
            return missing
        if not _ffmpeg_encodes("libopenjpeg"):
            return "this ffmpeg has no libopenjpeg encoder (Debian's ffmpeg package has it)"
        return None

    def encode(self, signal: ImageSignal, quality: Quality) -> bytes:
        with tempfile.TemporaryDirectory() as folder:
            source, target = Path(folder) / "in.png", Path(folder) / "out.jp2"
            Image.fromarray(rgb8(signal)).save(source, compress_level=1)
            level = ("-compression_level", int(quality))
            run_tool([*FFMPEG, "-i", source, *JPEG2000_ENCODER, *level, target])
            return target.read_bytes()

    def decode(self, data: bytes, reference: Any) -> ImageSignal:
        with tempfile.TemporaryDirectory() as folder:
            source, target = Path(folder) / "in.jp2", Path(folder) / "out.png"
            source.write_bytes(data)
            run_tool([*FFMPEG, "-i", source, target])
            with Image.open(target) as image:
                return rgb_signal(np.asarray(image.convert("RGB")))


def classic_image_codecs() -> list[PillowImageCodec | Jpeg2000Codec]:
    """The classic image baselines, lowest-rate settings first."""
    return [
        PillowImageCodec("jpeg", None, "JPEG", "jpg", JPEG_QUALITIES),
        PillowImageCodec("webp", None, "WebP", "webp", WEBP_QUALITIES),
        PillowImageCodec("avif", "AVIF", None, "avif", AVIF_QUALITIES),
        Jpeg2000Codec(),
    ]


@functools.cache
def _compressai_codec(class_name: str) -> Any:
    """An instance of one of CompressAI's bench codec classes (they take no options)."""
    with quiet_compressai_import():
        from compressai.utils.bench import codecs

    return getattr(codecs, class_name)(None)


@functools.cache
def _ffmpeg_encodes(encoder: str) -> bool:
    listing = subprocess.run(
        ["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True, check=False
    )
    return any(line.split()[1:2] == [encoder] for line in listing.stdout.splitlines())

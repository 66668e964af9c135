"""Reading, writing and tensor conversion of images.

Everything a user can get wrong about an input image (missing file, not an image,
truncated data, absurd dimensions) surfaces here as a single-line
:class:`~unicomp.errors.InputError`, so the CLI never shows a traceback for a bad file.

Images are normalised on load to a small set of pixel layouts (see :class:`ImageSignal`)
and remember the Pillow mode they should be written back in, so that
``load -> to_tensor -> from_tensor -> save`` reproduces a lossless input exactly.
"""

from __future__ import annotations

import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from unicomp.errors import InputError

__all__ = [
    "MAX_PIXELS",
    "MIN_SIDE",
    "ImageSignal",
    "crop_to",
    "from_tensor",
    "has_alpha",
    "load_image",
    "pad_to_multiple",
    "save_image",
    "to_tensor",
]

#: Largest accepted image, in pixels (8192 x 8192 = 64 Mi pixels). Checked against the
#: header size before any pixel data is decoded, so a decompression bomb is refused
#: without allocating its buffer. Pillow's own limit (~89 MP) is higher, so ours fires
#: first; Pillow's still guards anything that slips past (see :func:`load_image`).
MAX_PIXELS: int = 8192 * 8192

#: Smallest accepted side, in pixels. Below this the codecs' downsampling makes no sense.
MIN_SIDE: int = 16

# Pillow modes we save back in, with their numpy layout: (channels, dtype).
_LAYOUTS: dict[str, tuple[int, np.dtype]] = {
    "L": (1, np.dtype(np.uint8)),
    "LA": (2, np.dtype(np.uint8)),
    "RGB": (3, np.dtype(np.uint8)),
    "RGBA": (4, np.dtype(np.uint8)),
    "I;16": (1, np.dtype(np.uint16)),
}

_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N"}


@dataclass(frozen=True)
class ImageSignal:
    """A decoded image in one of a few canonical layouts.

    Attributes:
        pixels: ``H x W x C`` array. ``uint8`` with C = 1 (grey), 2 (grey + alpha),
            3 (RGB) or 4 (RGBA); or ``uint16`` with C = 1 (16-bit grey).
        mode: the Pillow mode the image is written back in, one of ``"L"``, ``"LA"``,
            ``"RGB"``, ``"RGBA"``, ``"I;16"``; it always agrees with ``pixels``.
            Modes without a faithful canonical form are converted on load (palette
            ``P`` -> RGB or RGBA, ``CMYK``/``YCbCr``/... -> RGB, ``1`` -> L,
            ``I;16B``/``I`` -> I;16), so they decode back in the converted mode.
        source_mode: the mode the file was stored in, kept for messages and metadata.
    """

    pixels: np.ndarray
    mode: str
    source_mode: str = ""

    def __post_init__(self) -> None:
        layout = _LAYOUTS.get(self.mode)
        if layout is None:
            raise ValueError(f"unsupported ImageSignal mode {self.mode!r}")
        channels, dtype = layout
        p = self.pixels
        if p.ndim != 3 or p.shape[2] != channels or p.dtype != dtype:
            raise ValueError(
                f"mode {self.mode} needs an HxWx{channels} {dtype} array, "
                f"got shape {p.shape} dtype {p.dtype}"
            )

    @property
    def height(self) -> int:
        """Height in pixels."""
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        """Width in pixels."""
        return int(self.pixels.shape[1])

    @property
    def channels(self) -> int:
        """Number of channels in ``pixels`` (alpha included)."""
        return int(self.pixels.shape[2])

    @property
    def bit_depth(self) -> int:
        """Bits per sample: 8 or 16."""
        return 16 if self.pixels.dtype == np.uint16 else 8


def has_alpha(signal: ImageSignal) -> bool:
    """True if the image carries an alpha channel (which the codecs do not model)."""
    return signal.mode in ("LA", "RGBA")


# --------------------------------------------------------------------------- loading


def load_image(path: str | os.PathLike[str]) -> ImageSignal:
    """Decode an image file (PNG, JPEG, WebP, BMP, TIFF, ...) into an :class:`ImageSignal`.

    The EXIF orientation is applied, so the pixels are as a viewer shows them. Only the
    first frame of multi-frame files is read. The size is checked against
    :data:`MAX_PIXELS` and :data:`MIN_SIDE` from the header, before decoding.

    Raises:
        InputError: the path is missing, not a regular file, empty, not a decodable
            image, truncated, too large, too small, or in an unsupported pixel format.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if not p.is_file():
        raise InputError(f"{p}: not a regular file")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: file is empty")

    try:
        with warnings.catch_warnings():
            # Pillow warns (rather than raises) between 1x and 2x its own limit; make
            # that an error too so it cannot slip through as a huge allocation.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as img:
                _check_size(p, img.size)
                img.load()
                img = ImageOps.exif_transpose(img) or img
                return _to_signal(p, img)
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(f"{p}: image is too large ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise InputError(f"{p}: not a recognised image file") from exc
    except (
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
        MemoryError,
        struct.error,
        IndexError,
        KeyError,
    ) as exc:
        # Truncated or corrupt data (or EXIF) surfaces as any of these, by plugin.
        raise InputError(f"{p}: cannot decode image: {_one_line(exc)}") from exc


def _check_size(path: Path, size: tuple[int, int]) -> None:
    """Refuse absurd or tiny dimensions given the header's (width, height)."""
    w, h = size
    if w * h > MAX_PIXELS:
        raise InputError(
            f"{path}: image is {w}x{h} = {w * h:,} pixels; "
            f"unicomp accepts at most {MAX_PIXELS:,} pixels (decompression bomb guard)"
        )
    if w < MIN_SIDE or h < MIN_SIDE:
        raise InputError(f"{path}: image is {w}x{h}; unicomp needs at least {MIN_SIDE}x{MIN_SIDE}")


def _to_signal(path: Path, img: Image.Image) -> ImageSignal:
    """Convert a loaded Pillow image into one of the canonical layouts."""
    source = img.mode
    if source in _SIXTEEN_BIT_MODES:
        arr = np.asarray(img)  # numpy honours the byte order of I;16B / I;16L
        return ImageSignal(_hwc(arr.astype(np.uint16)), "I;16", source)
    if source == "I":
        # 32-bit integer; Pillow uses it for some 16-bit PNG/TIFF files.
        arr = np.asarray(img, dtype=np.int32)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise InputError(f"{path}: 32-bit integer pixels outside 0..65535 are not supported")
        return ImageSignal(_hwc(arr.astype(np.uint16)), "I;16", source)
    if source in ("L", "LA", "RGB", "RGBA"):
        target = source
    elif source == "1":
        target = "L"
    elif source == "P":
        target = "RGBA" if "transparency" in img.info else "RGB"
    elif source in ("PA", "RGBa", "La"):
        target = "RGBA" if source != "La" else "LA"
    elif source == "F":
        raise InputError(f"{path}: floating-point images are not supported")
    else:  # CMYK, YCbCr, LAB, HSV, RGBX, ...
        target = "RGB"
    if target != source:
        img = img.convert(target)
    arr = np.asarray(img, dtype=np.uint8)
    return ImageSignal(np.ascontiguousarray(_hwc(arr)), target, source)


def _hwc(arr: np.ndarray) -> np.ndarray:
    """Give 2-D arrays a trailing channel axis."""
    return arr[:, :, None] if arr.ndim == 2 else arr


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# --------------------------------------------------------------------------- saving

# Modes each output format can store as-is; others fall back via _FALLBACK.
_FORMAT_MODES: dict[str, set[str]] = {
    "PNG": {"L", "LA", "RGB", "RGBA", "I;16"},
    "TIFF": {"L", "LA", "RGB", "RGBA", "I;16"},
    "WEBP": {"RGB", "RGBA"},
    "BMP": {"L", "RGB"},  # Pillow writes RGBA BMPs that read back as RGB
    "JPEG": {"L", "RGB"},
}
# Ordered fallbacks: first one the format accepts wins.
_FALLBACK: dict[str, tuple[str, ...]] = {
    "I;16": ("L", "RGB"),
    "LA": ("RGBA", "L", "RGB"),
    "RGBA": ("RGB",),
    "L": ("RGB",),
    "RGB": (),
}
_SAVE_OPTIONS: dict[str, dict[str, object]] = {
    # Decoded output should not lose more than necessary: lossless WebP keeps exact
    # pixels (and RGB under transparent alpha), JPEG gets a high quality, no chroma
    # subsampling.
    "WEBP": {"lossless": True, "exact": True},
    "JPEG": {"quality": 95, "subsampling": 0},
}


def save_image(signal: ImageSignal, path: str | os.PathLike[str]) -> None:
    """Write ``signal`` to exactly ``path``; the format comes from the extension.

    Unknown or missing extensions write PNG. The signal's mode is kept when the
    format can store it; otherwise the nearest it can (16-bit -> 8-bit grey with
    rounding, alpha dropped for JPEG, grey -> RGB for WebP). Atomic replacement is the
    caller's job.

    Raises:
        InputError: the file cannot be written (missing directory, permissions, ...).
    """
    p = Path(path)
    fmt = Image.registered_extensions().get(p.suffix.lower(), "PNG")
    modes = _FORMAT_MODES.get(fmt)
    mode = signal.mode
    if modes is not None and mode not in modes:
        mode = next((m for m in _FALLBACK[mode] if m in modes), "RGB")
    img = _to_pil(signal, mode)
    try:
        img.save(p, format=fmt, **_SAVE_OPTIONS.get(fmt, {}))
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{p}: cannot write image: {_one_line(exc)}") from exc


def _to_pil(signal: ImageSignal, mode: str) -> Image.Image:
    """Build a Pillow image of ``signal`` in ``mode`` (the signal's or a fallback)."""
    px = signal.pixels
    if signal.mode == "I;16":
        if mode == "I;16":
            # Explicit little-endian bytes: fromarray's uint16 handling varies by version.
            return Image.frombytes(
                "I;16", (signal.width, signal.height), px[:, :, 0].astype("<u2").tobytes()
            )
        px = _round_to_u8(px)
        return Image.fromarray(px[:, :, 0], "L").convert(mode)
    img = Image.fromarray(px[:, :, 0] if signal.channels == 1 else px, signal.mode)
    return img if mode == signal.mode else img.convert(mode)


def _round_to_u8(px: np.ndarray) -> np.ndarray:
    """16-bit to 8-bit by rounding (v / 257), the exact inverse of 8 -> 16 bit scaling."""
    return ((px.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


# --------------------------------------------------------------------------- tensors


def to_tensor(signal: ImageSignal) -> torch.Tensor:
    """The colour content as a ``3 x H x W`` float32 tensor in [0, 1].

    Grey is replicated to three channels so every model sees RGB; alpha is dropped
    (it is restored from ``like`` by :func:`from_tensor`); 16-bit values are divided by
    65535 and 8-bit by 255.
    """
    px = signal.pixels
    scale = 65535.0 if px.dtype == np.uint16 else 255.0
    colour = px[:, :, :1] if signal.channels <= 2 else px[:, :, :3]
    t = torch.from_numpy(colour.astype(np.float32) / np.float32(scale)).permute(2, 0, 1)
    if t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    return t.contiguous()


def from_tensor(t: torch.Tensor, like: ImageSignal) -> ImageSignal:
    """Turn a ``3 x H x W`` (or ``1 x 3 x H x W``) tensor in [0, 1] back into pixels.

    The result has ``like``'s mode, bit depth and channel count: values are clipped to
    [0, 1], scaled and rounded to the nearest integer; grey is the mean of the three
    channels (exact when they are equal); alpha, if any, is copied from ``like`` since
    the models do not produce one. ``like`` must have the same height and width.
    """
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 3 or t.shape[0] not in (1, 3):
        raise ValueError(f"expected a 3xHxW tensor, got shape {tuple(t.shape)}")
    h, w = int(t.shape[1]), int(t.shape[2])
    if (h, w) != (like.height, like.width):
        raise ValueError(f"tensor is {w}x{h} but the reference image is {like.width}x{like.height}")
    x = t.detach().to(device="cpu", dtype=torch.float64).clamp(0.0, 1.0)
    grey = like.channels <= 2
    if grey:
        x = x.mean(dim=0, keepdim=True)
    elif x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    sixteen = like.pixels.dtype == np.uint16
    scale = 65535.0 if sixteen else 255.0
    values = torch.round(x * scale).permute(1, 2, 0).numpy()
    px = values.astype(np.uint16 if sixteen else np.uint8)
    if has_alpha(like):
        px = np.concatenate([px, like.pixels[:, :, -1:]], axis=2)
    return ImageSignal(np.ascontiguousarray(px), like.mode, like.source_mode)


def pad_to_multiple(t: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad the bottom/right of ``t`` (``C x H x W`` or ``N x C x H x W``) to a multiple.

    Models with ``k`` stride-2 stages need sides divisible by ``2**k``. Reflection
    avoids the hard edges zero padding would waste bits on. Reflect padding cannot
    exceed ``size - 1`` in one go, so larger pads are reflected repeatedly (mirroring
    the already-padded tensor); a side of 1 is replicated. Returns the padded tensor
    and the original ``(h, w)`` for :func:`crop_to`.
    """
    if multiple < 1:
        raise ValueError(f"multiple must be positive, got {multiple}")
    if t.dim() not in (3, 4):
        raise ValueError(f"expected a CxHxW or NxCxHxW tensor, got shape {tuple(t.shape)}")
    h, w = int(t.shape[-2]), int(t.shape[-1])
    x = t.unsqueeze(0) if t.dim() == 3 else t
    x = _pad_axis(x, (-h) % multiple, axis=-2)
    x = _pad_axis(x, (-w) % multiple, axis=-1)
    return (x[0] if t.dim() == 3 else x), (h, w)


def _pad_axis(x: torch.Tensor, amount: int, axis: int) -> torch.Tensor:
    """Pad ``amount`` rows (axis -2) or columns (axis -1) at the end, by reflection."""
    while amount > 0:
        size = int(x.shape[axis])
        step = min(amount, size - 1)
        mode = "reflect"
        if step <= 0:  # a single row/column cannot be reflected
            step, mode = amount, "replicate"
        pad = (0, step, 0, 0) if axis == -1 else (0, 0, 0, step)
        x = F.pad(x, pad, mode=mode)
        amount -= step
    return x


def crop_to(t: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Undo :func:`pad_to_multiple`: keep the top-left ``h x w`` of the last two axes."""
    if h > t.shape[-2] or w > t.shape[-1]:
        raise ValueError(f"cannot crop {tuple(t.shape[-2:])} to larger size {(h, w)}")
    return t[..., :h, :w]

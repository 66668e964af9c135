"""Image quality metrics: PSNR and MS-SSIM on 8-bit RGB, chroma PSNR and flat-region PSNR.

PSNR and MS-SSIM are defined on 8-bit RGB values (data range 255), the convention of
the learned image compression literature, so numbers are comparable with published
rate-distortion curves. Chroma PSNR scores the colour alone (Cb and Cr of JPEG's
full-range BT.601 YCbCr): a codec can keep PSNR while shifting a purple background
towards black, which this shows. Flat-region PSNR scores the luma of the reference's
flat blocks alone (sky, walls, night): a generative decoder can paint texture there that
whole-image PSNR barely sees. :func:`image_metrics` brings any
:class:`ImageSignal` to 8-bit RGB first.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_msssim import ms_ssim as _pytorch_ms_ssim

from unicomp.errors import InputError
from unicomp.modalities.image.io import ImageSignal

__all__ = ["MS_SSIM_WEIGHTS", "chroma_psnr", "flat_psnr", "image_metrics", "ms_ssim", "psnr"]

#: Per-scale exponents of Wang et al. (2003), finest scale first, as in pytorch_msssim.
MS_SSIM_WEIGHTS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_WIN_SIZE = 11
_WIN_SIGMA = 1.5
_K1, _K2 = 0.01, 0.03


def psnr(ref: np.ndarray, test: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two same-shape uint8 (HxWx3) images.

    ``10 * log10(255**2 / MSE)`` with the MSE over all pixels and channels of the
    8-bit values; identical images give ``float('inf')``.
    """
    a, b = _check_pair(ref, test)
    diff = a.astype(np.int32) - b.astype(np.int32)
    sse = int(np.square(diff).sum(dtype=np.int64))
    if sse == 0:
        return float("inf")
    mse = sse / diff.size
    return 10.0 * math.log10(255.0**2 / mse)


#: RGB → (Cb, Cr) rows of JPEG's full-range BT.601 transform (offsets cancel in errors).
_CHROMA = np.array([[-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def chroma_psnr(ref: np.ndarray, test: np.ndarray) -> float:
    """PSNR in dB of the Cb and Cr planes of two same-shape uint8 (HxWx3) images,
    together; NaN if ``ref`` is grey (it has no colour to keep), inf if they agree."""
    a, b = _check_pair(ref, test)
    if np.array_equal(a[:, :, 0], a[:, :, 1]) and np.array_equal(a[:, :, 1], a[:, :, 2]):
        return math.nan
    diff = (a.astype(np.float64) - b.astype(np.float64)) @ _CHROMA.T
    mse = float(np.square(diff).mean())
    if mse == 0:
        return float("inf")
    return 10.0 * math.log10(255.0**2 / mse)


#: RGB → luma (Y) row of the same transform.
_LUMA = np.array([0.299, 0.587, 0.114])
#: Flat-region PSNR looks at non-overlapping blocks of this side...
FLAT_BLOCK = 8
#: ...whose reference luma has a standard deviation under this (8-bit levels): on
#: 768-px train photos, 7-73 % of the area (skies, walls, out-of-focus backgrounds).
FLAT_STD = 2.0


def flat_psnr(ref: np.ndarray, test: np.ndarray) -> float:
    """PSNR in dB of the luma of two same-shape uint8 (HxWx3) images over the blocks
    where ``ref`` is flat (see FLAT_BLOCK, FLAT_STD); NaN if it has none, inf if the
    images agree there."""
    a, b = _check_pair(ref, test)
    height, width = (a.shape[0] // FLAT_BLOCK) * FLAT_BLOCK, (a.shape[1] // FLAT_BLOCK) * FLAT_BLOCK

    def luma_blocks(image: np.ndarray) -> np.ndarray:
        luma = image[:height, :width].astype(np.float64) @ _LUMA
        blocks = luma.reshape(height // FLAT_BLOCK, FLAT_BLOCK, width // FLAT_BLOCK, FLAT_BLOCK)
        return blocks.transpose(0, 2, 1, 3).reshape(-1, FLAT_BLOCK * FLAT_BLOCK)

    reference = luma_blocks(a)
    flat = reference.std(axis=1) < FLAT_STD
    if not flat.any():
        return math.nan
    mse = float(np.square(reference[flat] - luma_blocks(b)[flat]).mean())
    if mse == 0:
        return float("inf")
    return 10.0 * math.log10(255.0**2 / mse)


def ms_ssim(ref: np.ndarray, test: np.ndarray) -> float:
    """Multi-scale SSIM of two same-shape uint8 (HxWx3) images, data range 255.

    Images whose short side exceeds 160 px use ``pytorch_msssim.ms_ssim`` (5 scales,
    11-tap Gaussian window, the standard definition). Smaller images cannot be
    downsampled four times under that window (pytorch_msssim asserts), so they use as
    many scales ``L`` as fit (the coarsest scale keeps a side of at least 11 px) with the
    first ``L`` standard weights renormalised to sum to 1; for sides of 16..21 px that is
    one scale, i.e. plain SSIM. Sides under 11 px use the largest odd window that fits
    (at least 3 px). The value is in [0, 1]; identical images give 1.0.
    """
    a, b = _check_pair(ref, test)
    x = _to_nchw(a)
    y = _to_nchw(b)
    side = min(a.shape[0], a.shape[1])
    if side > (_WIN_SIZE - 1) * 2 ** (len(MS_SSIM_WEIGHTS) - 1):
        value = _pytorch_ms_ssim(
            x, y, data_range=255, size_average=True, win_size=_WIN_SIZE, win_sigma=_WIN_SIGMA
        )
        return float(value)
    return float(_reduced_ms_ssim(x, y, side))


def image_metrics(ref: ImageSignal, test: ImageSignal) -> dict[str, float]:
    """PSNR, MS-SSIM, chroma PSNR and flat-region PSNR between two images, as
    ``{"psnr": ..., "ms_ssim": ..., "chroma_psnr": ..., "flat_psnr": ...}`` (chroma PSNR
    is NaN for a grey reference, flat-region PSNR for one without flat blocks).

    Both are brought to 8-bit RGB first: grey is replicated, 16-bit is rounded to
    8-bit, and alpha is ignored (the codecs do not code it).

    Raises:
        InputError: the images differ in size.
    """
    if (ref.height, ref.width) != (test.height, test.width):
        raise InputError(
            f"images differ in size: {ref.width}x{ref.height} vs {test.width}x{test.height}"
        )
    a, b = _rgb8(ref), _rgb8(test)
    return {
        "psnr": psnr(a, b),
        "ms_ssim": ms_ssim(a, b),
        "chroma_psnr": chroma_psnr(a, b),
        "flat_psnr": flat_psnr(a, b),
    }


# --------------------------------------------------------------------------- helpers


def _check_pair(ref: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate the metric contract: same shape HxWxC uint8."""
    a, b = np.asarray(ref), np.asarray(test)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    if a.ndim != 3 or a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError(f"expected HxWxC uint8 arrays, got {a.shape} {a.dtype} / {b.dtype}")
    return a, b


def _rgb8(signal: ImageSignal) -> np.ndarray:
    """8-bit RGB view of a signal for the metrics (grey replicated, alpha dropped)."""
    px = signal.pixels
    if px.dtype == np.uint16:
        px = ((px.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if px.shape[2] <= 2:
        return np.repeat(px[:, :, :1], 3, axis=2)
    return px[:, :, :3]


def _to_nchw(a: np.ndarray) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float32).permute(2, 0, 1)[None]


def _gaussian(size: int, sigma: float) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def _blur(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian, 'valid' convolution per channel (as pytorch_msssim does)."""
    c = x.shape[1]
    x = F.conv2d(x, g.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, g.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)


def _ssim_cs(
    x: torch.Tensor, y: torch.Tensor, g: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel SSIM and contrast-structure terms (N x C each)."""
    c1, c2 = (_K1 * 255) ** 2, (_K2 * 255) ** 2
    mu_x, mu_y = _blur(x, g), _blur(y, g)
    sxx = _blur(x * x, g) - mu_x**2
    syy = _blur(y * y, g) - mu_y**2
    sxy = _blur(x * y, g) - mu_x * mu_y
    cs_map = (2 * sxy + c2) / (sxx + syy + c2)
    ssim_map = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1) * cs_map
    return ssim_map.flatten(2).mean(-1), cs_map.flatten(2).mean(-1)


def _reduced_ms_ssim(
    x: torch.Tensor, y: torch.Tensor, side: int, levels: int | None = None
) -> float:
    """MS-SSIM with as many scales as ``side`` allows (see :func:`ms_ssim`)."""
    win = _WIN_SIZE
    if side < win:
        win = side if side % 2 else side - 1
        if win < 3:
            raise ValueError(f"image side {side} is too small for SSIM (need at least 3 px)")
    if levels is None:
        levels = 1
        while levels < len(MS_SSIM_WEIGHTS) and side // 2**levels >= win:
            levels += 1
    w = torch.tensor(MS_SSIM_WEIGHTS[:levels], dtype=torch.float32)
    w = w / w.sum()
    g = _gaussian(win, _WIN_SIGMA)
    mcs = []
    for i in range(levels):
        ssim_c, cs = _ssim_cs(x, y, g)
        if i < levels - 1:
            mcs.append(torch.relu(cs))
            pad = [s % 2 for s in x.shape[2:]]
            x = F.avg_pool2d(x, kernel_size=2, padding=pad)
            y = F.avg_pool2d(y, kernel_size=2, padding=pad)
    stack = torch.stack(mcs + [torch.relu(ssim_c)], dim=0)
    return float(torch.prod(stack ** w.view(-1, 1, 1), dim=0).mean())

"""Photographs as a unicomp modality: files ↔ RGB tensors in [0, 1], padded to 16 px.

Every mode :func:`load_image` produces (grey, RGB, 16-bit grey, and with alpha) goes
through the same 3-channel model; the original size and mode travel as side info, so
the decoder crops the reflect padding away and writes the image back in its own mode.
Alpha is not modelled: a fully opaque alpha channel is restored exactly, a transparent
one is refused rather than dropped.

The distortion trained and searched on is ``MSE + MS_SSIM_WEIGHT * (1 - MS-SSIM)`` (a
modality made with another weight trains and searches on that one).
MS-SSIM keeps the standard five scales and weights but uses a 7-tap Gaussian window
(sigma 1.5), because pytorch_msssim needs a side over 16 * (window - 1) px: 96 px with
7 taps, so 128-px training crops work; smaller images fall back to single-scale SSIM.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from pytorch_msssim import ms_ssim, ssim
from torch.utils.checkpoint import checkpoint

from unicomp.core.config import (
    AdmmConfig,
    ModelConfig,
    QuantizerConfig,
    RefinementConfig,
    TrainConfig,
)
from unicomp.core.tiling import windows
from unicomp.errors import FormatError, InputError
from unicomp.modalities.base import Networks, SideInfo
from unicomp.modalities.image.io import (
    ImageSignal,
    crop_to,
    from_tensor,
    has_alpha,
    load_image,
    pad_to_multiple,
    save_image,
    to_tensor,
)
from unicomp.modalities.image.metrics import image_metrics
from unicomp.modalities.image.networks import build_image_networks

#: Images are reflect-padded to a multiple of this (the networks' total stride).
PAD_MULTIPLE = 16
#: Weight of (1 - MS-SSIM) beside the MSE of [0, 1] pixels; at the default rates both
#: terms are then of similar size.
MS_SSIM_WEIGHT = 0.05
SSIM_WINDOW = 7
#: pytorch_msssim's condition for five scales: smaller side > 16 * (window - 1).
MS_SSIM_MIN_SIDE = 16 * (SSIM_WINDOW - 1) + 1
#: Larger images score (1 - MS-SSIM) as the mean over windows of this side, each
#: recomputed in the backward pass: at full size, the latent search on a 24-megapixel
#: photo kept ~20 full-resolution SSIM maps alive for autograd (8.6 GB).
SIMILARITY_WINDOW = 1024

#: The bundled model; it serves every rate label as an operating point with its own
#: rate-term weight and entropy tables (see unicomp/release/image.py). The lowest label
#: is a rung below the rates users mostly ask for: a photo full of texture that its
#: 0.06bpp point codes above 0.06 bpp at the point's own weight is coded at a blend
#: with the point below, not at a weight far from the one its generator was tuned at
#: (image-v2.1, benchmarks/README.md).
DEFAULT_MODEL = "image-v2.1"
RATES = ("0.03bpp", "0.06bpp", "0.12bpp", "0.25bpp")
DEFAULT_RATE = "0.12bpp"

_MODES = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4, "I;16": 1}


class ImageModality:
    """Still images, coded by a light fully convolutional model with a ×16 latent."""

    name = "image"
    extensions: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
    rate_unit = "bpp"
    size_unit = "Mpx"

    def __init__(self, ms_ssim_weight: float = MS_SSIM_WEIGHT) -> None:
        """``ms_ssim_weight``: the weight of (1 - MS-SSIM) beside the MSE in the
        distortion trained and searched on (experiments train with others)."""
        self.ms_ssim_weight = ms_ssim_weight

    def default_config(self) -> ModelConfig:
        """The settings of the bundled model (see unicomp/release/image.py)."""
        return ModelConfig(
            name=DEFAULT_MODEL,
            modality=self.name,
            # 32 channels at 1/16 per axis: 3 bits per element ~ 0.375 bpp, the top
            # of the range; the trained points and the search's rate term make the
            # lower rates. Encoder 0.83 M, generator 0.63 M parameters.
            rates=list(RATES),
            network={
                "widths": [24, 64, 96, 128],
                "latent_channels": 32,
                "separable_stages": 2,
                "bottleneck_blocks": 1,
                "discriminator_width": 16,
                "discriminator_scales": 3,
            },
            # An odd number of centers, one pinned at 0: the low-rate points shrink
            # their latents towards the middle (core/gains.py), which with image-v1's 8
            # centers was a boundary between two. 13 leave the finest point room for its
            # ~3 bits per element (log2 9 = 3.2 would not).
            quantizer=QuantizerConfig(num_centers=13, zero_center=True),
            # Chosen on train photos with image-v1 (compare: benchmarks/tune_admm.py
            # --modality image, on the train folder): its centers ~1.5 apart, at 0.12
            # bpp on six train photos, 8 straight-through steps (core/search.py) of
            # 0.05 rms gained +1.80 dB PSNR over the encoder's output, against +1.59 /
            # +1.76 / +1.14 with 0.07 / 0.03 / 0.012, and ADMM (0.15 rms, rho 0.002
            # growing 1.3 per iteration, patience 3) +0.24 dB; 16 steps +1.82 dB. A
            # step (one forward and backward pass) takes ~0.55 s on a 768x512 photo: 7
            # keep its encode under 5 s on one core.
            # image-v2's gains spread its top points' latents 2-6x wider than image-v1's,
            # and there annealed steps pay: from 0.25 rms shrinking by 0.6 a step, on
            # the four tune4 train photos at 0.06 / 0.12 / 0.25 bpp, the distortion fell
            # 14.9 / 10.8 / 6.4 % below that of 7 steps of 0.05 (+0.48 / +0.45 / +0.18 dB
            # PSNR, +0.015 / +0.007 / +0.002 MS-SSIM). 0.2 by 0.5 did as well; bolder
            # starts (0.3 by 0.4, 0.4 by 0.35) lost up to all of the search's gain, and
            # constant steps of 0.2 or more lost it too.
            # The budgets are counted in iterations from the photo's size, not read off
            # the clock, so a busy machine codes a photo as an idle one does: one
            # iteration took ~0.6 s on a 768x512 photo on one core here (AMD EPYC, AVX2,
            # channels-last), 1.55 s per megapixel, so 7 fit in 4.5 s up to 0.41
            # megapixels, one up to 2.9, none beyond.
            admm=AdmmConfig(
                iterations=7,
                learning_rate=0.25,
                final_learning_rate=0.0117,
                time_budget=4.5,
                # --effort best: up to 60 s for a 768x512 photo.
                best_seconds=60 / 0.393216,
                step_seconds=1.55,
            ),
            # The generator misses a photo's coarse colour and brightness (smooth errors
            # on skies and walls), which a grid of corrections fixes for a few % of the
            # file (core/refinement.py). On 4 train photos at 0.06-0.25 bpp, 7 search
            # steps (benchmarks/compare_runs.py against none), a share of 2 % gave BD-rates
            # of -11.4 % in PSNR, +0.3 % in MS-SSIM, -28.9 % in chroma and -19.2 % in
            # flat-region PSNR; 4 % -11.7 / +1.4 / -31.6 / -21.5 %. Judging the search's
            # iterates after an (unquantized) correction did worse: -7.4 % PSNR at 4 %.
            refinement=RefinementConfig(
                cells=[16, 24, 32, 48, 64, 96, 128],
                steps=[0.004, 0.008, 0.012, 0.016, 0.024, 0.032],
                share=0.02,
            ),
            # Quantization starts early (step 3500) so a usable model exists within an
            # hour on one core; the long hard phase keeps improving when resumed. The
            # GAN terms are light: the bench scores PSNR and MS-SSIM.
            # Rate-aware and variable-rate (core/rate_model.py, core/gains.py): four
            # points, each steered to a target in bits per latent element as the
            # training tables count them (core/rate_steering.py), coded train photos at
            # ~0.15 / 0.36 / 0.066 / 0.23 bpp; the equal weights only start the shared
            # rate multiplier. image-v2 trained its third point at 0.8 to step 24000,
            # then 0.65 (benchmarks/README.md has the runs before it). Crops are seen
            # at scales down to 1/6: the wallpapers are 5-20 megapixels.
            train=TrainConfig(
                float_steps=2000,
                soft_steps=1500,
                hard_steps=22500,
                batch_size=8,
                crop=[128, 128],
                learning_rate=4e-4,
                betas=[0.9, 0.999],
                reconstruction_weight=100.0,
                adversarial_weight=0.05,
                feature_matching_weight=0.5,
                adversarial_start=2000,
                checkpoint_every=250,
                log_every=25,
                rate_weights=[0.01, 0.01, 0.01, 0.01],
                rate_targets=[1.6, 3.0, 0.65, 2.2],
                max_downscale=6.0,
            ),
        )

    def default_model(self, rate: str | None) -> str:
        """One model serves every rate between its operating points (the codec checks
        that ``rate`` lies there)."""
        return DEFAULT_MODEL

    def load(self, path: Path) -> ImageSignal:
        return load_image(path)

    def save(self, signal: ImageSignal, path: Path) -> None:
        save_image(signal, path)

    def analysis(self, signal: ImageSignal) -> tuple[torch.Tensor, dict[str, int | float | str]]:
        """RGB in [0, 1], reflect-padded; side info restores size and mode."""
        if has_alpha(signal):
            transparent = int((signal.pixels[:, :, -1] < 255).sum())
            if transparent:
                raise InputError(
                    f"image has transparency ({transparent} pixels with alpha < 255); "
                    "unicomp codes colour only, so flatten it onto a background first"
                )
        x, (height, width) = pad_to_multiple(to_tensor(signal), PAD_MULTIPLE)
        return x, {"height": height, "width": width, "mode": signal.mode}

    def synthesis(self, x: torch.Tensor, side_info: SideInfo) -> ImageSignal:
        mode = side_info.get("mode")
        if not isinstance(mode, str) or mode not in _MODES:
            raise FormatError(f"side info names an unknown image mode {mode!r}")
        height = _decoded_extent(side_info, "height", x.shape[-2])
        width = _decoded_extent(side_info, "width", x.shape[-1])
        dtype = np.uint16 if mode == "I;16" else np.uint8
        opaque = np.full((height, width, _MODES[mode]), np.iinfo(dtype).max, dtype=dtype)
        return from_tensor(crop_to(x, height, width), ImageSignal(opaque, mode))

    def build_networks(self, network: Mapping[str, object]) -> Networks:
        return Networks(*build_image_networks(network, PAD_MULTIPLE))

    def distortion(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """MSE plus weighted (1 - MS-SSIM), per item; see the module docstring."""
        # In the generator's channels-last layout (networks.py): mixed layouts are slow.
        x = x.contiguous(memory_format=torch.channels_last)
        x_hat = x_hat.contiguous(memory_format=torch.channels_last)
        mse = ((x_hat - x) ** 2).flatten(1).mean(dim=1)
        x_hat = x_hat.clamp(0.0, 1.0)
        height, width = x.shape[-2:]
        if max(height, width) <= SIMILARITY_WINDOW:
            return mse + self.ms_ssim_weight * _dissimilarity(x_hat, x)
        side = SIMILARITY_WINDOW
        parts = [
            checkpoint(
                _dissimilarity,
                x_hat[..., top : top + side, left : left + side],
                x[..., top : top + side, left : left + side],
                use_reentrant=False,
            )
            for top in windows(height, min(side, height), 0)
            for left in windows(width, min(side, width), 0)
        ]
        return mse + self.ms_ssim_weight * torch.stack(parts).mean(dim=0)

    def metrics(self, reference: ImageSignal, decoded: ImageSignal) -> dict[str, float]:
        return image_metrics(reference, decoded)

    def rate(self, bits: int, signal: ImageSignal) -> float:
        """Bits per pixel of the original (unpadded) image."""
        return bits / (signal.height * signal.width)

    def size(self, signal: ImageSignal) -> float:
        """Megapixels of the original image: what speeds are quoted per."""
        return signal.height * signal.width / 1e6


def _decoded_extent(side_info: SideInfo, what: str, extent: int) -> int:
    """The image's ``what`` (height, width) from a header, checked against the ``extent``
    decoded (it was padded up to a multiple of PAD_MULTIPLE): a crafted header must
    not crop outside the decoded tensor."""
    value = side_info.get(what)
    if not isinstance(value, int) or not extent - PAD_MULTIPLE < value <= extent:
        raise FormatError(f"side info {what} {value!r} does not fit a decoded {extent} px")
    return value


def _dissimilarity(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """1 - MS-SSIM per item (plain SSIM when a side is too short for five scales)."""
    if min(x.shape[-2:]) >= MS_SSIM_MIN_SIDE:
        return 1.0 - ms_ssim(x_hat, x, data_range=1.0, size_average=False, win_size=SSIM_WINDOW)
    return 1.0 - ssim(x_hat, x, data_range=1.0, size_average=False, win_size=SSIM_WINDOW)

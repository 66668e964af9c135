"""Light CPU networks for images: x (3, H, W) ↔ z (C, H/16, W/16).

On a CPU the cost sits in the high-resolution layers, so no layer runs at full
resolution: the encoder starts with a strided convolution and the generator ends with a
sub-pixel one (a half-resolution convolution emitting each 2x2 block). The half- and
quarter-resolution stages are thin and depthwise-separable (a 3x3 per-channel
convolution then a 1x1 mix, ~1/9 of a full 3x3's work); the coarse stages, where pixels
are few, use full convolutions and most of the channels. (Measured: a separable layer
at full resolution is memory-bound and was slower than the sub-pixel design.)

Weights and activations are kept channels-last (NHWC), which oneDNN's CPU kernels run
faster: on one core, image-v2's generator decoded a 768x512 photo's latent in 0.18-0.19 s
against 0.24-0.26 s, a latent-search step took 0.57 s against 0.68 s, and a training
step 0.41 s against 0.45 s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import torch
from torch import nn

from unicomp.core.networks import (
    DivisiveNormalization,
    MultiScaleDiscriminator,
    ResidualBlock,
    Upsample,
    activation,
    conv,
)
from unicomp.core.tiling import tiled_map
from unicomp.errors import UsageError

DIMS = 2
IMAGE_CHANNELS = 3
#: Inputs larger than this many pixels on a side are processed in tiles of this size...
TILE_PIXELS = 1024
#: ...overlapping by this much: 3/8 of it (96 px) covers the generator's receptive
#: radius (6 latent px) and most of the encoder's.
OVERLAP_PIXELS = 256


class TiledSequential(nn.Sequential):
    """A layer stack that, outside training, runs large inputs tile by tile.

    Same parameters and state-dict keys as :class:`nn.Sequential`; only memory use
    differs: ``tile`` and ``overlap`` are in input samples, ``scale`` is the stack's
    output/input size ratio.
    """

    def __init__(self, layers: Sequence[nn.Module], tile: int, overlap: int, scale: Fraction):
        super().__init__(*layers)
        self.tile, self.overlap, self.scale = tile, overlap, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        if self.training or max(x.shape[-DIMS:]) <= self.tile:
            return super().forward(x)
        return tiled_map(super().forward, x, DIMS, self.tile, self.overlap, self.scale)


#: What follows each resampling convolution: a LeakyReLU (image-v1, image-v2), or
#: divisive normalization (GDN in the encoder, its inverse in the generator).
NONLINEARITIES = ("leaky", "gdn")


def stage_nonlinearity(kind: str, channels: int, inverse: bool) -> nn.Module:
    """The nonlinearity after a resampling convolution of ``channels`` outputs."""
    if kind == "gdn":
        return DivisiveNormalization(DIMS, channels, inverse=inverse)
    return activation()


def separable(in_channels: int, out_channels: int) -> nn.Sequential:
    """A 3x3 depthwise convolution followed by a 1x1 channel mix."""
    return nn.Sequential(
        conv(DIMS, in_channels, in_channels, 3, groups=in_channels),
        conv(DIMS, in_channels, out_channels, 1),
    )


def build_image_encoder(
    widths: Sequence[int], latent_channels: int, separable_stages: int, nonlinearity: str
) -> TiledSequential:
    """x (batch, 3, H, W) → z (batch, latent_channels, H / 2**n, W / 2**n), n = len(widths)."""
    layers: list[nn.Module] = []
    previous = IMAGE_CHANNELS
    for index, width in enumerate(widths):
        layers += [
            conv(DIMS, previous, width, 4, stride=2),
            stage_nonlinearity(nonlinearity, width, inverse=False),
        ]
        layers.append(ResidualBlock(DIMS, width, depthwise=index < separable_stages))
        previous = width
    layers.append(conv(DIMS, previous, latent_channels, 3))
    stride = 2 ** len(widths)
    return TiledSequential(layers, TILE_PIXELS, OVERLAP_PIXELS, Fraction(1, stride))


def build_image_generator(
    widths: Sequence[int],
    latent_channels: int,
    separable_stages: int,
    bottleneck_blocks: int,
    nonlinearity: str,
) -> TiledSequential:
    """ẑ (batch, latent_channels, h, w) → x̂ (batch, 3, h * 2**n, w * 2**n).

    The last stage is sub-pixel: a half-resolution convolution emits the 4 pixels of
    every 2x2 block, so no layer runs at full resolution (where a CPU spends most).
    """
    layers: list[nn.Module] = [
        conv(DIMS, latent_channels, widths[-1], 3),
        stage_nonlinearity(nonlinearity, widths[-1], inverse=True),
    ]
    layers += [ResidualBlock(DIMS, widths[-1]) for _ in range(bottleneck_blocks)]
    for stage in reversed(range(len(widths) - 1)):  # the encoder stage being mirrored
        previous, width = widths[stage + 1], widths[stage]
        thin = stage < separable_stages
        mix = separable(previous, width) if thin else conv(DIMS, previous, width, 3)
        layers += [
            Upsample(2),
            mix,
            stage_nonlinearity(nonlinearity, width, inverse=True),
            ResidualBlock(DIMS, width, depthwise=thin),
        ]
    layers += [conv(DIMS, widths[0], IMAGE_CHANNELS * 4, 3), nn.PixelShuffle(2)]
    stride = 2 ** len(widths)
    return TiledSequential(
        layers, TILE_PIXELS // stride, OVERLAP_PIXELS // stride, Fraction(stride)
    )


def build_image_networks(
    network: Mapping[str, Any], multiple: int
) -> tuple[nn.Module, nn.Module, nn.Module]:
    """Encoder, generator and multi-scale critic from a ``network`` config section.

    ``multiple`` is what the modality pads images to; the networks' total stride must
    divide it, or decoded images would not line up with their padding.
    """
    widths = list(network["widths"])
    if not widths or multiple % 2 ** len(widths):
        raise UsageError(
            f"{len(widths)} stride-2 stages do not fit images padded to multiples of {multiple}"
        )
    latent = int(network["latent_channels"])
    thin = int(network["separable_stages"])
    encoder = build_image_encoder(widths, latent, thin, _nonlinearity(network, "encoder"))
    generator = build_image_generator(
        widths,
        latent,
        thin,
        int(network["bottleneck_blocks"]),
        _nonlinearity(network, "generator"),
    )
    critic = MultiScaleDiscriminator(
        DIMS,
        IMAGE_CHANNELS,
        scales=int(network["discriminator_scales"]),
        width=int(network["discriminator_width"]),
    )
    for part in (encoder, generator, critic):
        part.to(memory_format=torch.channels_last)
    return encoder, generator, critic


def _nonlinearity(network: Mapping[str, Any], part: str) -> str:
    """``network["<part>_nonlinearity"]``, checked; LeakyReLU where the key is absent."""
    kind = str(network.get(f"{part}_nonlinearity", "leaky"))
    if kind not in NONLINEARITIES:
        raise UsageError(
            f"unknown {part} nonlinearity {kind!r}: choose one of {', '.join(NONLINEARITIES)}"
        )
    return kind

"""The speech model's networks: 1-D convolutions over time, mel bands as channels.

A log-mel spectrogram is a sequence of 128-dimensional frames, so the networks treat the
bands as channels and convolve along time only; that is what keeps the model small
enough to train and to search latents on a CPU. Two stride-2 stages turn 125 frames/s
into 31.25 latent frames/s. Outside training, inputs longer than a tile (33 s) run tile
by tile (core/tiling.py), so an hour of speech needs no more memory than half a minute.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import torch
from torch import nn

from unicomp.core.networks import (
    ConvStackSpec,
    MultiScaleDiscriminator,
    build_encoder,
    build_generator,
)
from unicomp.core.tiling import tiled_map
from unicomp.modalities.base import Networks

#: Encoder tiles of 4096 mel frames overlapping by 256: 3/8 of the overlap (96 frames)
#: exceeds both networks' receptive radius (about 36 mel frames).
TILE_FRAMES = 4096
OVERLAP_FRAMES = 256

#: The default model's shape (stored in every model card, so changing it is safe).
DEFAULT_NETWORK: dict[str, Any] = {
    "n_mels": 128,
    "widths": [256, 256],
    "stem_width": 192,
    "latent_channels": 24,
    "residual_blocks": 2,
    "kernel": 3,
    "discriminator_width": 64,
    "discriminator_scales": 2,
}


class TiledSequential(nn.Sequential):
    """A layer stack over time that, outside training, runs long inputs tile by tile.

    Same parameters and state-dict keys as the :class:`nn.Sequential` it wraps.
    """

    def __init__(self, stack: nn.Sequential, tile: int, overlap: int, scale: Fraction) -> None:
        super().__init__(*stack)
        self.tile, self.overlap, self.scale = tile, overlap, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or x.shape[-1] <= self.tile:
            return super().forward(x)
        return tiled_map(super().forward, x, 1, self.tile, self.overlap, self.scale)


def stack_spec(network: Mapping[str, Any]) -> ConvStackSpec:
    """The encoder/generator shape a ``network`` config describes."""
    return ConvStackSpec(
        dims=1,
        in_channels=int(network["n_mels"]),
        latent_channels=int(network["latent_channels"]),
        widths=[int(w) for w in network["widths"]],
        stride=2,
        residual_blocks=int(network["residual_blocks"]),
        kernel=int(network["kernel"]),
        stem_width=int(network["stem_width"]),
    )


def build_speech_networks(network: Mapping[str, Any]) -> Networks:
    """Encoder, generator and a multi-scale critic of log-mel sequences."""
    spec = stack_spec(network)
    stride = spec.total_stride
    encoder = TiledSequential(build_encoder(spec), TILE_FRAMES, OVERLAP_FRAMES, Fraction(1, stride))
    generator = TiledSequential(
        build_generator(spec), TILE_FRAMES // stride, OVERLAP_FRAMES // stride, Fraction(stride)
    )
    critic = MultiScaleDiscriminator(
        1,
        spec.in_channels,
        scales=int(network["discriminator_scales"]),
        width=int(network["discriminator_width"]),
    )
    return Networks(encoder, generator, critic)

"""Per-channel latent gains: how one network pair serves several rates.

A model trained at several rate weights (core/trainer.py) conditions both sides on the
operating point with one gain per latent channel, as gained variable-rate codecs do
(Cui et al., CVPR 2021, "Asymmetric Gained Deep Image Compression"): the encoder's
output is multiplied by the point's *latent gain* before it is quantized, so a small
gain packs a channel onto fewer centers (fewer bits, coarser), and the centers are
multiplied by the point's *input gain* on their way into the generator, which undoes
the scaling (training ties it to the inverse of the latent gain, core/trainer.py, and
calibration may tune it apart). Latent gains are encoder-side only; the input gain is a
parameter of the point's generator (:class:`GainedGenerator`), so a decoder needs
nothing new.
"""

from __future__ import annotations

import torch
from torch import nn

#: The key of a gained generator's input gain among its weights.
INPUT_GAIN_KEY = "input_gain"


def scale_channels(values: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    """``values`` (batch, channels, *axes) times one ``gain`` per channel (channels,),
    or per item and channel (batch, channels)."""
    return values * gain.reshape(gain.shape + (1,) * (values.dim() - 2))


class GainedGenerator(nn.Module):
    """A generator whose input is first scaled per channel by ``input_gain``.

    Its weights are ``input_gain`` and the generator's own under ``body.``; the loader
    (core/checkpoint.py) recognises a gained generator by that key.
    """

    def __init__(self, body: nn.Module, channels: int) -> None:
        super().__init__()
        self.body = body
        self.input_gain = nn.Parameter(torch.ones(channels))

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.body(scale_channels(latent, self.input_gain))


def fold_output_gain(stack: nn.Module, gain: torch.Tensor) -> None:
    """Scale ``stack``'s output channels by ``gain`` in its last layer's weights, so that
    it computes what ``scale_channels(stack(x), gain)`` did: a released point's latent
    gain becomes the encoder's own when a run fine-tunes a gained model."""
    layer = _foldable(stack, -1)
    gain = gain.to(layer.weight)
    layer.weight.mul_(gain.reshape((-1,) + (1,) * (layer.weight.dim() - 1)))
    if layer.bias is not None:
        layer.bias.mul_(gain)


def fold_input_gain(stack: nn.Module, gain: torch.Tensor) -> None:
    """Scale ``stack``'s input channels by ``gain`` in its first layer's weights, so that
    it computes what ``stack(scale_channels(x, gain))`` did: the generator's side of
    :func:`fold_output_gain`."""
    layer = _foldable(stack, 0)
    gain = gain.to(layer.weight)
    layer.weight.mul_(gain.reshape((1, -1) + (1,) * (layer.weight.dim() - 2)))


def _foldable(stack: nn.Module, index: int) -> nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear:
    """Layer ``index`` of ``stack`` when it is linear in its channels, with (out, in, ...)
    weights."""
    which = "first" if index == 0 else "last"
    layer = stack[index] if isinstance(stack, nn.Sequential) else stack
    if not isinstance(layer, nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear):
        raise ValueError(f"the {which} layer ({type(layer).__name__}) cannot take a gain")
    return layer

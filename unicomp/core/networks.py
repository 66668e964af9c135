"""Building blocks that modalities compose into encoders, generators and critics.

Everything works in 1-D (time) or 2-D (space) from the same code, chosen by ``dims``.
No normalisation layer couples the items of a batch, so a batched latent search treats
every signal independently. Upsampling is nearest-neighbour followed by a convolution,
which avoids the checkerboard artefacts of transposed convolutions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

_CONV = {1: nn.Conv1d, 2: nn.Conv2d}


def conv(
    dims: int, in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1
) -> nn.Module:
    """A 'same'-padded convolution (for stride 1) in 1-D or 2-D."""
    if dims not in _CONV:
        raise ValueError(f"dims must be 1 or 2, got {dims}")
    return _CONV[dims](
        in_channels,
        out_channels,
        kernel,
        stride=stride,
        padding=(kernel - stride + 1) // 2,
        groups=groups,
    )


def activation() -> nn.Module:
    return nn.LeakyReLU(0.2)


class DivisiveNormalization(nn.Module):
    """Generalized divisive normalization (GDN; Ballé, Laparra and Simoncelli, 2016).

    Each channel is divided by ``sqrt(beta + gamma @ x**2)``, a learned norm of every
    channel at the same position; ``inverse`` multiplies instead, for generators. Ballé
    et al. found transforms built with it code images better than with pointwise
    activations for the same parameters: it removes the channels' joint local scale,
    which a pointwise nonlinearity cannot. ``beta`` and ``gamma`` are kept as squares
    of free parameters so that both stay non-negative (and ``beta`` positive).
    """

    #: Keeps the norm away from 0 where a position has no activity at all.
    BETA_FLOOR = 1e-6
    #: The initial coupling between different channels (as a square root): small but
    #: not 0, where the square's gradient would vanish.
    COUPLING_ROOT = 1e-3

    def __init__(self, dims: int, channels: int, inverse: bool = False) -> None:
        super().__init__()
        self.dims, self.inverse = dims, inverse
        self.beta_root = nn.Parameter(torch.ones(channels))
        coupling = torch.full((channels, channels), self.COUPLING_ROOT)
        self.gamma_root = nn.Parameter(coupling.fill_diagonal_(0.1**0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = self.beta_root.numel()
        beta = self.beta_root.square() + self.BETA_FLOOR
        gamma = self.gamma_root.square().view(channels, channels, *([1] * self.dims))
        mix = F.conv1d if self.dims == 1 else F.conv2d
        norm = mix(x.square(), gamma, beta).sqrt()
        return x * norm if self.inverse else x / norm


class ResidualBlock(nn.Module):
    """Two convolutions with a skip; depthwise-separable when that is cheaper."""

    def __init__(self, dims: int, channels: int, kernel: int = 3, depthwise: bool = False) -> None:
        super().__init__()
        if depthwise:
            self.body = nn.Sequential(
                conv(dims, channels, channels, kernel, groups=channels),
                conv(dims, channels, channels, 1),
                activation(),
                conv(dims, channels, channels, kernel, groups=channels),
                conv(dims, channels, channels, 1),
            )
        else:
            self.body = nn.Sequential(
                conv(dims, channels, channels, kernel),
                activation(),
                conv(dims, channels, channels, kernel),
            )
        self.act = activation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))

    def zero_branch(self) -> None:
        """Zero the branch's last convolution: the block then only applies its activation."""
        for parameter in self.body[-1].parameters():
            nn.init.zeros_(parameter)


class Upsample(nn.Module):
    """Nearest-neighbour upsampling by an integer factor."""

    def __init__(self, factor: int) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.factor, mode="nearest")


@dataclass(frozen=True)
class ConvStackSpec:
    """Shape of a symmetric encoder/generator pair.

    ``widths[i]`` is the channel count after the i-th stride-``stride`` stage, so the
    latent is ``stride ** len(widths)`` times shorter per axis than the input.
    """

    dims: int
    in_channels: int
    latent_channels: int
    widths: Sequence[int]
    stride: int = 2
    residual_blocks: int = 1
    kernel: int = 3
    depthwise: bool = False
    stem_width: int | None = None

    @property
    def total_stride(self) -> int:
        return self.stride ** len(self.widths)


def build_encoder(spec: ConvStackSpec) -> nn.Sequential:
    """x (batch, in_channels, *extent) → z (batch, latent_channels, *extent / stride**n)."""
    stem = spec.stem_width or spec.widths[0]
    layers: list[nn.Module] = [conv(spec.dims, spec.in_channels, stem, 5), activation()]
    previous = stem
    for width in spec.widths:
        layers += [
            conv(spec.dims, previous, width, 2 * spec.stride, stride=spec.stride),
            activation(),
        ]
        layers += [
            ResidualBlock(spec.dims, width, spec.kernel, spec.depthwise)
            for _ in range(spec.residual_blocks)
        ]
        previous = width
    layers.append(conv(spec.dims, previous, spec.latent_channels, 3))
    return nn.Sequential(*layers)


def build_generator(spec: ConvStackSpec) -> nn.Sequential:
    """ẑ (batch, latent_channels, ...) → x̂ (batch, in_channels, ... * stride**n)."""
    widths = list(reversed(spec.widths))
    stem = spec.stem_width or spec.widths[0]
    layers: list[nn.Module] = [conv(spec.dims, spec.latent_channels, widths[0], 3), activation()]
    for index, width in enumerate(widths):
        layers += [
            ResidualBlock(spec.dims, width, spec.kernel, spec.depthwise)
            for _ in range(spec.residual_blocks)
        ]
        following = widths[index + 1] if index + 1 < len(widths) else stem
        layers += [Upsample(spec.stride), conv(spec.dims, width, following, 3), activation()]
    layers.append(conv(spec.dims, stem, spec.in_channels, 5))
    return nn.Sequential(*layers)


def grow_stack(target: nn.Module, source: nn.Module) -> None:
    """Load ``source``'s weights into ``target``, the same encoder or generator with at
    least as many residual blocks per stage and latent channels, so that a larger
    network can start from a trained one instead of from random weights.

    Each stage's extra blocks follow the trained ones with a zero residual branch: they
    then only re-apply their activation (LeakyReLU shrinks negative values once more),
    so a deeper stack starts near the source's function, not on it. Extra latent
    channels start as :func:`_load_widened` leaves them: a wider generator ignores them
    until it learns to use them, and a wider encoder fills them from the start.
    """
    if not isinstance(target, nn.Sequential) or not isinstance(source, nn.Sequential):
        # A plugin's network that is not a layer stack cannot grow, only load as it is.
        target.load_state_dict(source.state_dict())
        return
    target_groups, source_groups = _stages(target), _stages(source)
    if len(target_groups) != len(source_groups):
        raise ValueError("the two stacks have different layers")
    for grown, trained in zip(target_groups, source_groups, strict=True):
        if type(grown[0]) is not type(trained[0]) or len(grown) < len(trained):
            raise ValueError("the two stacks have different layers")
        for layer, weights in zip(grown, trained, strict=False):
            _load_widened(layer, weights)
        for block in grown[len(trained) :]:
            assert isinstance(block, ResidualBlock)
            block.zero_branch()


def _load_widened(layer: nn.Module, trained: nn.Module) -> None:
    """Load ``trained``'s weights into ``layer``, the same layer or a full convolution
    with more input or output channels. The trained weights fill the leading channels;
    extra input channels get zero weights, so that the layer computes what the trained
    one did whatever they hold, and extra output channels keep their initialisation,
    so that they carry something for the next layer to learn from."""
    grown_state, trained_state = layer.state_dict(), trained.state_dict()
    # A full convolution may grow in its output and input channels, its first two axes.
    growing = 2 if isinstance(layer, nn.Conv1d | nn.Conv2d) and layer.groups == 1 else 0
    if grown_state.keys() != trained_state.keys():
        raise ValueError("the two stacks have different layers")
    state = {}
    for name, weights in trained_state.items():
        grown = grown_state[name].clone()
        if (
            grown.dim() != weights.dim()
            or grown.shape[growing:] != weights.shape[growing:]
            or any(g < w for g, w in zip(grown.shape[:growing], weights.shape, strict=False))
        ):
            raise ValueError("the two stacks have different layers")
        if name == "weight" and growing:
            grown[:, weights.shape[1] :] = 0
        grown[tuple(slice(0, size) for size in weights.shape)] = weights
        state[name] = grown
    layer.load_state_dict(state)


def _stages(stack: nn.Sequential) -> list[list[nn.Module]]:
    """The stack's layers, each run of residual blocks gathered into one group."""
    groups: list[list[nn.Module]] = []
    for layer in stack:
        if isinstance(layer, ResidualBlock) and groups and isinstance(groups[-1][0], ResidualBlock):
            groups[-1].append(layer)
        else:
            groups.append([layer])
    return groups


class PatchDiscriminator(nn.Module):
    """A PatchGAN critic: strided convolutions scoring overlapping patches."""

    def __init__(self, dims: int, in_channels: int, width: int = 32, layers: int = 3) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        channels = in_channels
        for index in range(layers):
            out = width * 2**index
            blocks.append(nn.Sequential(conv(dims, channels, out, 4, stride=2), activation()))
            channels = out
        blocks.append(conv(dims, channels, 1, 3))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every intermediate feature map (for feature matching), the patch scores last."""
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return features


class MultiScaleDiscriminator(nn.Module):
    """PatchGAN critics at successively halved resolutions (as in pix2pixHD/MelGAN)."""

    def __init__(
        self, dims: int, in_channels: int, scales: int = 3, width: int = 32, layers: int = 3
    ) -> None:
        super().__init__()
        self.dims = dims
        self.critics = nn.ModuleList(
            PatchDiscriminator(dims, in_channels, width, layers) for _ in range(scales)
        )

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        outputs = []
        for index, critic in enumerate(self.critics):
            if index:
                pool = F.avg_pool1d if self.dims == 1 else F.avg_pool2d
                x = pool(x, kernel_size=4, stride=2, padding=1, count_include_pad=False)
            outputs.append(critic(x))
        return outputs

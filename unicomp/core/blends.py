"""Points between points: blends of two neighbouring operating points.

Each calibrated point's generator is fine-tuned to the indices its own rate weight gives
(core/point_tuning.py) and decodes best near that weight: on train photos, pushing the
0.12 bpp point's weight to a third of its own to fill 0.14 bpp cost 3 dB PSNR, though it
spent more bits. A file asked for a rate between two points is therefore coded at a
blend of them, step ``k`` of :data:`STEPS` from the lower point ``a`` to the upper ``b``
(t = k / STEPS): generator weights ``a * (1 - t) + b * t``, integer tables mixed in
the same proportion, rate weight geometrically. On the same photo the halfway blend
decoded at 29.9 dB where the better of the two points gave 25.3 dB.

Gains (core/gains.py) mix geometrically, ``a ** (1 - t) * b ** t``: the latent gain an
encoder scales by and the input gain its generator undoes it with. A point's input gain
is about the inverse of its latent gain, and only geometric mixes keep the two inverse:
mixed linearly, the halfway blend of two points 12x apart in gain feeds its generator
centers 3.5x too large. On 4 train photos, an image-v2 model's blends at 0.106 bpp
decoded at 14.8 dB mixed linearly and at 27.4 dB mixed geometrically, where its
0.06 bpp point gives 24.0 dB.

A blend is named ``<a>+<b>@<k>`` (``0.12bpp+0.25bpp@8``) in the file's header, and a
decoder rebuilds it from the two points with the same exact arithmetic: the tables in
integers, the weights with one float multiply per term and one add (docs/format.md).
"""

from __future__ import annotations

import copy
import re

import torch

from unicomp.core.entropy import TOTAL, EntropyTables
from unicomp.core.gains import INPUT_GAIN_KEY
from unicomp.core.points import OperatingPoint
from unicomp.errors import FormatError

#: Blends per interval between two neighbouring points.
STEPS = 16
_LABEL = re.compile(r"(?P<low>[^+@]+)\+(?P<high>[^+@]+)@(?P<step>[0-9]{1,2})")


def blend_label(low: str, high: str, step: int) -> str:
    """The name of step ``step`` of the blend from point ``low`` to point ``high``."""
    return f"{low}+{high}@{step}"


def parse_blend_label(label: str) -> tuple[str, str, int] | None:
    """``(low, high, step)`` of a blend's name, None for a plain point's; a malformed
    step raises FormatError (a header is untrusted)."""
    match = _LABEL.fullmatch(label)
    if match is None:
        return None
    step = int(match["step"])
    if not 0 < step < STEPS:
        raise FormatError(f"blend step {step} of {label!r} is not between 1 and {STEPS - 1}")
    return match["low"], match["high"], step


def blend(low: OperatingPoint, high: OperatingPoint, step: int) -> OperatingPoint:
    """Step ``step`` (1 .. STEPS - 1) of the way from point ``low`` to ``high``."""
    assert low.label is not None and high.label is not None and 0 < step < STEPS
    if low.coder.name != high.coder.name:
        raise FormatError(f"points {low.label!r} and {high.label!r} use different coders")
    if low.generator.state_dict().keys() != high.generator.state_dict().keys() or (
        (low.latent_gain is None) != (high.latent_gain is None)
    ):
        raise FormatError(f"points {low.label!r} and {high.label!r} have different networks")
    t = step / STEPS
    generator = copy.deepcopy(low.generator)
    upper_weights = high.generator.state_dict()
    with torch.no_grad():
        for key, mixed in generator.state_dict().items():
            if key == INPUT_GAIN_KEY:
                mixed.copy_(mix_gains(mixed, upper_weights[key], t))
            elif mixed.is_floating_point():
                mixed.copy_(mixed * (1 - t) + upper_weights[key] * t)
    latent_gain = None
    if low.latent_gain is not None and high.latent_gain is not None:
        latent_gain = mix_gains(low.latent_gain, high.latent_gain, t)
    return OperatingPoint(
        label=blend_label(low.label, high.label, step),
        rate_weight=low.rate_weight ** (1 - t) * high.rate_weight**t,
        search_tables=mix_tables(low.search_tables, high.search_tables, step),
        coder=low.coder,
        coder_tables=mix_tables(low.coder_tables, high.coder_tables, step),
        generator=generator.eval(),
        latent_gain=latent_gain,
    )


def mix_gains(low: torch.Tensor, high: torch.Tensor, t: float) -> torch.Tensor:
    """``low ** (1 - t) * high ** t`` per element, as ``exp((1 - t) ln low + t ln high)``
    in float64 rounded once to float32, so that every platform gets the same gains;
    where the two are not both positive (a tuned gain may cross zero), the linear mix."""
    low64, high64 = low.double(), high.double()
    positive = (low64 > 0) & (high64 > 0)
    geometric = torch.exp((1 - t) * low64.log() + t * high64.log())  # NaN where not taken
    linear = low64 * (1 - t) + high64 * t
    return torch.where(positive, geometric, linear).to(low.dtype)


def mix_tables(low: EntropyTables, high: EntropyTables, step: int) -> EntropyTables:
    """Tables ``step / STEPS`` of the way from ``low`` to ``high``, in integers only: each
    frequency is the floor of the mix, and the units short of 2**16 go to the symbols
    with the largest remainders (the lower index first on a tie)."""
    if (low.channels, low.num_symbols) != (high.channels, high.num_symbols):
        raise FormatError("blended points have tables of different shapes")
    rows = []
    for row_low, row_high in zip(low.frequencies, high.frequencies, strict=True):
        scaled = [(STEPS - step) * a + step * b for a, b in zip(row_low, row_high, strict=True)]
        row = [value // STEPS for value in scaled]
        short = TOTAL - sum(row)
        for index in sorted(range(len(row)), key=lambda i: (-(scaled[i] % STEPS), i))[:short]:
            row[index] += 1
        rows.append(tuple(row))
    return EntropyTables(tuple(rows))

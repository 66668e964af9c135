"""The coarse correction layer (core/refinement.py): its section round-trips and refuses
malformed bytes, its fit recovers a smooth error, and files that carry it meet their
rate and decode closer to the input than without it."""

from __future__ import annotations

import dataclasses
import math
import struct

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from unicomp.core import container, refinement
from unicomp.core.config import ModelConfig, RefinementConfig, merge
from unicomp.core.points import parse_rate
from unicomp.core.refinement import Refinement
from unicomp.errors import FormatError, UsageError

RNG = np.random.default_rng(7)


@pytest.mark.parametrize(
    ("cells", "shape"), [((4,), (2, 9)), ((3, 5), (3, 4, 2)), ((1, 1), (1, 1, 1))]
)
def test_sections_round_trip_and_their_size_is_known_before_coding(cells, shape) -> None:
    values = RNG.integers(-40, 41, size=shape) * RNG.integers(0, 2, size=shape)
    values.flat[0] = -(2**29)  # a large value takes a long code, not a wrong one
    original = Refinement(cells, 0.013, values)
    section = original.encode()
    assert len(section) == refinement.section_bytes(cells, values)
    extent = [c * g for c, g in zip(cells, shape[1:], strict=True)]
    decoded = refinement.decode(section, extent, shape[0])
    assert decoded.cells == cells and decoded.step == 0.013
    assert np.array_equal(decoded.values, values)


def test_the_correction_is_linear_interpolation_of_the_grid() -> None:
    grid = Refinement((8, 4), 0.5, RNG.integers(-9, 10, size=(2, 3, 5)))
    ours = grid.correction((20, 17))
    theirs = F.interpolate(
        torch.tensor(grid.values * 0.5, dtype=torch.float64)[None],
        size=(20, 17),
        mode="bilinear",
        align_corners=False,
    )[0]
    assert np.allclose(ours, theirs.numpy(), atol=1e-12)


def test_the_fit_recovers_a_smooth_error_within_its_budget() -> None:
    y, x = np.mgrid[0:96, 0:128] / 64.0
    smooth = np.stack([0.1 * np.sin(3 * x + y), 0.05 * np.cos(2 * y) - 0.02])
    residual = torch.tensor(smooth + RNG.normal(0, 0.01, smooth.shape), dtype=torch.float32)
    energy = float((smooth**2).sum())
    chosen = refinement.choose(residual, [8, 16, 32], [0.005, 0.01], budget_bits=4000)
    assert chosen is not None and 8 * len(chosen.encode()) <= 4000
    left = smooth - chosen.correction((96, 128))
    assert float((left**2).sum()) < 0.05 * energy  # most of the smooth error is gone
    assert refinement.choose(residual, [8, 16, 32], [0.005, 0.01], budget_bits=100) is None


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda s: s[:-1], "truncated"),
        (lambda s: s + b"\x00", "after its values"),
        (lambda s: b"\x01" + s[1:], "axes"),
        (lambda s: s[:1] + b"\x00" + s[2:], "cell size 0"),
        (lambda s: s[:3] + struct.pack("<d", -1.0) + s[11:], "positive"),
        (lambda s: s[:3] + struct.pack("<d", math.nan) + s[11:], "positive"),
        (lambda s: s[:11] + b"\xf8" + b"\x00" * 8, "order"),  # 5 bits: order 31
        (lambda s: s[:11] + b"\x00" * 9, "longer than allowed"),  # order 0, no end
        (lambda s: s[:1] + b"\x01\x01" + s[3:], "fewer bits"),  # cell 1: too many values
    ],
)
def test_malformed_sections_are_format_errors(mangle, message: str) -> None:
    section = Refinement((8, 8), 0.01, np.array([[[1, -2], [0, 3]]])).encode()
    assert section[:3] == b"\x02\x08\x08"
    with pytest.raises(FormatError, match=message):
        refinement.decode(mangle(section), (16, 16), 1)


def test_a_refinement_section_is_counted_apart_from_the_overhead() -> None:
    header = container.Header("sensor", "m", b"\0" * 8, (2, 3))
    plain = container.pack(header, b"\1" * 8)
    parts = container.unpack_parts(container.pack(header, b"\1" * 8, b"section"))
    assert parts.refinement == b"section" and parts.payload == b"\1" * 8
    assert parts.layout.refinement == 7
    assert parts.layout.overhead == len(plain) - 8  # every file states a refinement length
    assert container.unpack_parts(plain).refinement == b""


def test_the_config_refuses_settings_that_cannot_work(sensor) -> None:
    config = merge(sensor.default_config(), {"refinement": {"cells": [16], "share": 0.1}})
    assert config.refinement == RefinementConfig(cells=[16], share=0.1)
    assert ModelConfig.from_dict(config.to_dict()).refinement == config.refinement
    for bad in ({"cells": [0]}, {"steps": [-1.0]}, {"share": 1.0}):
        with pytest.raises(UsageError):
            merge(sensor.default_config(), {"refinement": bad})


def test_refined_files_meet_their_rate_and_decode_closer_to_the_input(calibrated) -> None:
    codec, signals, labels = calibrated
    plain_config = codec.model.config
    config = RefinementConfig(cells=[64, 128, 256], steps=[0.02, 0.05, 0.1], share=0.1)
    unit = codec.modality.rate_unit
    target = math.sqrt(math.prod(parse_rate(label, unit) for label in labels))
    codec.model.config = dataclasses.replace(plain_config, refinement=config)
    try:
        refined = []
        for signal in signals:
            data, report = codec.encode(signal, rate=target, effort="fast")
            assert report.rate <= target
            assert report.refinement_bits == 8 * container.unpack_parts(data).layout.refinement
            if report.refinement_bits:
                decoded = codec.decode(data).values
                errors = [
                    np.square(d - signal.values).mean() for d in (decoded, stripped(codec, data))
                ]
                assert errors[0] < errors[1]
                refined.append((data, decoded))
        assert len(refined) >= len(signals) // 2
        # At the bottom of the range the latent takes the lowest rate, the correction the rest.
        low = codec.rate_range[0]
        assert codec.encode(signals[0], rate=low, effort="fast")[1].rate <= low
    finally:
        codec.model.config = plain_config
    # The decoder needs no setting: a codec of the model that never refines applies it.
    assert all(np.array_equal(codec.decode(data).values, decoded) for data, decoded in refined)


def stripped(codec, data: bytes) -> np.ndarray:
    """The decode of the same file without its refinement section."""
    parts = container.unpack_parts(data)
    return codec.decode(container.pack(parts.header, parts.payload)).values

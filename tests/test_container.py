"""The .ucz container: round trips, and every defect of a file is a FormatError."""

from __future__ import annotations

import math
import struct
import tracemalloc
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unicomp.core import container
from unicomp.core.container import Header, pack, unpack, unpack_with_layout
from unicomp.errors import FormatError

names = st.text(min_size=0, max_size=40)
side_values = st.one_of(
    st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
headers = st.builds(
    Header,
    modality=names,
    model=names,
    weights_digest=st.binary(min_size=8, max_size=8),
    latent_shape=st.lists(st.integers(1, 64), min_size=1, max_size=4).map(tuple),
    coder=st.just("rans16"),
    side_info=st.dictionaries(st.text(max_size=12), side_values, max_size=6),
)


def sample_file() -> bytes:
    header = Header(
        "image",
        "image-0.12bpp",
        bytes(range(8)),
        (8, 4, 6),
        "rans16",
        {"height": 61, "width": 93, "gain": -3.5, "mode": "RGB"},
    )
    return pack(header, bytes(range(40)))


@given(headers, st.binary(max_size=300))
def test_any_header_and_payload_round_trip(header: Header, payload: bytes) -> None:
    decoded, decoded_payload = unpack(pack(header, payload))
    assert decoded == header
    assert decoded_payload == payload


def test_layout_separates_header_and_payload_bytes() -> None:
    data = sample_file()
    _, payload, layout = unpack_with_layout(data)
    assert layout.total == len(data)
    assert layout.payload == len(payload) == 40
    assert layout.overhead == len(data) - 40
    assert 0 < layout.header < layout.overhead


def test_every_truncation_is_a_format_error() -> None:
    data = sample_file()
    for end in range(len(data)):
        with pytest.raises(FormatError):
            unpack(data[:end])


def test_every_single_byte_corruption_is_a_format_error() -> None:
    data = sample_file()
    for position in range(len(data)):
        for flip in (0x01, 0x80, 0xFF):
            corrupted = bytearray(data)
            corrupted[position] ^= flip
            with pytest.raises(FormatError):
                unpack(bytes(corrupted))


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(FormatError, match="unexpected bytes"):
        unpack(sample_file() + b"\0")


def test_messages_name_the_problem() -> None:
    with pytest.raises(FormatError, match="bad magic"):
        unpack(b"PK\x03\x04" + bytes(20))
    with pytest.raises(FormatError, match="version 9"):
        unpack(container.MAGIC + b"\x09" + bytes(20))


@settings(max_examples=300)
@given(st.binary(max_size=2000))
def test_random_bytes_raise_only_format_errors_and_allocate_little(data: bytes) -> None:
    tracemalloc.start()
    try:
        unpack(data)
    except FormatError:
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < 64 * 1024 + 8 * len(data)


@given(st.binary(max_size=200))
def test_random_bytes_after_a_valid_prefix_raise_only_format_errors(tail: bytes) -> None:
    prefix = container.MAGIC + bytes([container.FORMAT_VERSION])
    with pytest.raises(FormatError):
        unpack(prefix + tail)


def test_declared_lengths_beyond_the_data_are_refused_before_allocation() -> None:
    huge_header = container.MAGIC + bytes([1]) + b"\xff\xff\xff\x7f"
    with pytest.raises(FormatError, match="exceeds the maximum"):
        unpack(huge_header)


def test_writer_refuses_headers_a_reader_would_refuse() -> None:
    with pytest.raises(FormatError):
        Header("image", "m", bytes(8), ())
    with pytest.raises(FormatError):
        Header("image", "m", bytes(7), (1,))
    with pytest.raises(FormatError):
        Header("x" * 300, "m", bytes(8), (1,))
    with pytest.raises(FormatError):
        Header("image", "m", bytes(8), (1 << 14, 1 << 14))


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_side_info_floats_must_be_finite(value: float) -> None:
    with pytest.raises(FormatError, match="not a finite number"):
        Header("sensor", "m", bytes(8), (2, 3), side_info={"scale": value})


def test_a_side_info_key_given_twice_is_refused() -> None:
    body = pack(Header("sensor", "m", bytes(8), (2, 3), side_info={"a": 1, "b": 2}), bytes(8))[:-4]
    twice = body.replace(b"\x01b\x00", b"\x01a\x00")
    with pytest.raises(FormatError, match="'a' appears twice"):
        unpack(twice + struct.pack("<I", zlib.crc32(twice)))

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
from unicomp.core.container import Header, pack, unpack, unpack_parts
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
    coder=st.tuples(st.sampled_from(["rans16", "rans16ctx", "my-coder"]), names).map(
        lambda parts: f"{parts[0]}:{parts[1]}" if parts[1] else parts[0]
    ),
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


#: One header, spelt out by hand as docs/format.md says, so that the reader is checked
#: against the format and not against its own writer: ``header_bytes(coder field)``.
HEADER = Header("speech", "m", bytes(8), (2, 3), "rans16ctx:2kbps", {"n": 5})


def header_bytes(coder_field: bytes) -> bytes:
    return b"\x06speech\x01m" + bytes(8) + coder_field + b"\x02\x02\x03\x01\x01n\x00\x0a"


def file_bytes(version: int, header: bytes, payload: bytes, refinement: bytes | None) -> bytes:
    """A file of ``version``: a refinement length follows the payload unless None."""
    body = bytes([*container.MAGIC, version, len(header)]) + header
    body += bytes([len(payload)]) + payload
    if refinement is not None:
        body += bytes([len(refinement)]) + refinement
    return body + struct.pack("<I", zlib.crc32(body))


VERSION_1_CODER = b"\x0frans16ctx:2kbps"
VERSION_3_CODER = b"\x01\x052kbps"  # rans16ctx's byte, then the point's label


def test_files_of_versions_one_and_two_read_as_they_were_written() -> None:
    payload, header = bytes(range(8)), header_bytes(VERSION_1_CODER)
    plain = container.unpack_parts(file_bytes(1, header, payload, None))
    refined = container.unpack_parts(file_bytes(2, header, payload, b"cells"))
    assert plain.header == refined.header == HEADER
    assert (plain.version, refined.version) == (1, 2)
    assert (plain.payload, plain.refinement) == (payload, b"")
    assert (refined.payload, refined.refinement) == (payload, b"cells")
    with pytest.raises(FormatError, match="must carry a refinement"):
        unpack(file_bytes(2, header, payload, b""))


def test_version_three_spells_the_coder_in_a_byte_and_always_states_a_refinement() -> None:
    payload, header = bytes(range(8)), header_bytes(VERSION_3_CODER)
    assert pack(HEADER, payload) == file_bytes(3, header, payload, b"")
    assert unpack_parts(pack(HEADER, payload)).version == 3
    assert pack(HEADER, payload, b"cells") == file_bytes(3, header, payload, b"cells")
    version_1 = file_bytes(1, header_bytes(VERSION_1_CODER), payload, None)
    assert len(pack(HEADER, payload)) == len(version_1) - 9 + 1


@pytest.mark.parametrize(
    ("coder_field", "coder"),
    [(b"\x00\x00", "rans16"), (b"\x01\x00", "rans16ctx"), (b"\xff\x05other\x01x", "other:x")],
)
def test_version_three_coder_fields_read_back(coder_field: bytes, coder: str) -> None:
    data = file_bytes(3, header_bytes(coder_field), bytes(8), b"")
    assert unpack(data)[0].coder == coder
    assert pack(unpack(data)[0], bytes(8)) == data


@pytest.mark.parametrize(
    ("coder_field", "message"),
    [(b"\x07\x00", "unknown coder byte 7"), (b"\xff\x06rans16\x00", "spelt out")],
)
def test_a_coder_field_spelt_another_way_is_refused(coder_field: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        unpack(file_bytes(3, header_bytes(coder_field), bytes(8), b""))


def test_a_writer_refuses_a_coder_field_naming_an_empty_point() -> None:
    with pytest.raises(FormatError, match="empty operating point"):
        pack(Header("speech", "m", bytes(8), (2, 3), "rans16:"), bytes(8))


@given(headers, st.binary(max_size=300))
def test_any_header_and_payload_round_trip(header: Header, payload: bytes) -> None:
    decoded, decoded_payload = unpack(pack(header, payload))
    assert decoded == header
    assert decoded_payload == payload


def test_layout_separates_header_and_payload_bytes() -> None:
    data = sample_file()
    parts = unpack_parts(data)
    payload, layout = parts.payload, parts.layout
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

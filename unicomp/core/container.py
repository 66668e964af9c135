"""The .ucz file format: a small self-describing box around an entropy-coded payload.

At 0.06 bpp or 1 kbps every byte of overhead is visible in the bitrate, so the header is
binary (LEB128 varints, length-prefixed strings), not JSON. Every length read from a file
is checked against the bytes that remain and against the maxima below before anything is
allocated; any inconsistency is a :class:`~unicomp.errors.FormatError` naming the problem.
The byte layout is specified in ``docs/format.md``.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from unicomp.errors import FormatError

MAGIC = b"UCZ1"
#: Version 1 files end with the payload; version 2 files add a refinement section
#: (core/refinement.py) after it. Writers used them until 2026-12-02; readers keep
#: reading them.
PLAIN_VERSION = 1
REFINED_VERSION = 2
#: What writers write since: the coder field in one byte plus the point's label (a 1 s
#: speech file at 2 kbit/s spent 24 of its 248 bytes spelling "rans16ctx:1kbps+2kbps@1"),
#: and a refinement length in every file, 0 when there is no refinement section.
FORMAT_VERSION = 3
READ_VERSIONS = (PLAIN_VERSION, REFINED_VERSION, FORMAT_VERSION)
DIGEST_BYTES = 8
#: Version 3's coder bytes: the index of a name here, or the escape byte followed by any
#: other name as a string.
_CODER_IDS = ("rans16", "rans16ctx")
_CODER_ESCAPE = 255

MAX_HEADER_BYTES = 4096
MAX_PAYLOAD_BYTES = 1 << 30
MAX_REFINEMENT_BYTES = 1 << 24
MAX_STRING_BYTES = 255
MAX_LATENT_DIMS = 8
MAX_LATENT_ELEMENTS = 1 << 26
MAX_SIDE_INFO_ENTRIES = 32
MAX_VARINT_BYTES = 10

_TAG_INT = 0
_TAG_FLOAT = 1
_TAG_STR = 2

SideValue = int | float | str


@dataclass(frozen=True)
class Header:
    """What a decoder needs besides the payload: which model, which latent, which signal."""

    modality: str
    model: str
    weights_digest: bytes
    latent_shape: tuple[int, ...]
    coder: str = "rans16"
    side_info: Mapping[str, SideValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_header(self)


@dataclass(frozen=True)
class Layout:
    """Byte counts of each part of a packed file, for honest bit accounting."""

    total: int
    header: int
    payload: int
    refinement: int = 0

    @property
    def overhead(self) -> int:
        """Every byte that is neither payload nor refinement: magic, version, lengths,
        header and CRC."""
        return self.total - self.payload - self.refinement


@dataclass(frozen=True)
class Parts:
    """A parsed file: header, payload, refinement section (empty: none), layout and the
    format version it was written in."""

    header: Header
    payload: bytes
    refinement: bytes
    layout: Layout
    version: int


def pack(header: Header, payload: bytes, refinement: bytes = b"") -> bytes:
    """Serialise a header, payload and optional refinement section into a .ucz file."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise FormatError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    if len(refinement) > MAX_REFINEMENT_BYTES:
        raise FormatError(f"refinement of {len(refinement)} bytes exceeds {MAX_REFINEMENT_BYTES}")
    header_bytes = _encode_header(header)
    body = b"".join(
        [
            MAGIC,
            bytes([FORMAT_VERSION]),
            varint_bytes(len(header_bytes)),
            header_bytes,
            varint_bytes(len(payload)),
            payload,
            varint_bytes(len(refinement)),
            refinement,
        ]
    )
    return body + struct.pack("<I", zlib.crc32(body))


def unpack(data: bytes) -> tuple[Header, bytes]:
    """Parse and verify a .ucz file; any defect raises FormatError."""
    parts = unpack_parts(data)
    return parts.header, parts.payload


def unpack_parts(data: bytes) -> Parts:
    """Parse and verify a .ucz file of any version this reader knows into its parts."""
    reader = ByteReader(data)
    if reader.take(len(MAGIC), "magic") != MAGIC:
        raise FormatError("not a .ucz file (bad magic bytes)")
    version = reader.u8("format version")
    if version not in READ_VERSIONS:
        known = ", ".join(map(str, READ_VERSIONS))
        raise FormatError(f"unsupported .ucz format version {version} (this reader: {known})")
    header_length = reader.varint("header length", MAX_HEADER_BYTES)
    header_bytes = reader.take(header_length, "header")
    payload_length = reader.varint("payload length", MAX_PAYLOAD_BYTES)
    payload = reader.take(payload_length, "payload")
    refinement = b""
    if version != PLAIN_VERSION:
        refinement = reader.take(
            reader.varint("refinement length", MAX_REFINEMENT_BYTES), "refinement"
        )
        if version == REFINED_VERSION and not refinement:
            raise FormatError("a version 2 file must carry a refinement section")
    body_end = reader.position
    stored_crc = struct.unpack("<I", reader.take(4, "CRC32"))[0]
    if reader.remaining:
        raise FormatError(f"{reader.remaining} unexpected bytes after the CRC32")
    if zlib.crc32(data[:body_end]) != stored_crc:
        raise FormatError("CRC32 mismatch: the file is corrupted")
    header = _decode_header(header_bytes, version)
    layout = Layout(len(data), header_length, payload_length, len(refinement))
    return Parts(header, payload, refinement, layout, version)


def _check_header(header: Header) -> None:
    for name in ("modality", "model", "coder"):
        _check_string(getattr(header, name), name)
    if len(header.weights_digest) != DIGEST_BYTES:
        raise FormatError(f"weights digest must be {DIGEST_BYTES} bytes")
    shape = header.latent_shape
    if not 1 <= len(shape) <= MAX_LATENT_DIMS:
        raise FormatError(f"latent has {len(shape)} dimensions (allowed 1..{MAX_LATENT_DIMS})")
    if any(d < 1 for d in shape) or math.prod(shape) > MAX_LATENT_ELEMENTS:
        raise FormatError(f"latent shape {shape} is empty or exceeds {MAX_LATENT_ELEMENTS}")
    if len(header.side_info) > MAX_SIDE_INFO_ENTRIES:
        raise FormatError(f"{len(header.side_info)} side-info entries exceed the maximum")
    for key, value in header.side_info.items():
        _check_string(key, "side-info key")
        if isinstance(value, str):
            _check_string(value, f"side-info {key!r}")
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise FormatError(f"side-info {key!r} has unsupported type {type(value).__name__}")
        elif isinstance(value, int) and not -(1 << 63) <= value < (1 << 63):
            raise FormatError(f"side-info {key!r} does not fit in 64 bits")
        elif isinstance(value, float) and not math.isfinite(value):
            raise FormatError(f"side-info {key!r} is {value}, not a finite number")


def _check_string(value: str, what: str) -> None:
    if not isinstance(value, str) or len(value.encode("utf-8")) > MAX_STRING_BYTES:
        raise FormatError(f"{what} must be a string of at most {MAX_STRING_BYTES} bytes")


def _encode_header(header: Header) -> bytes:
    """The header as version :data:`FORMAT_VERSION` spells it."""
    parts = [_string(header.modality), _string(header.model), header.weights_digest]
    parts.append(_compact_coder(header.coder))
    parts.append(varint_bytes(len(header.latent_shape)))
    parts.extend(varint_bytes(d) for d in header.latent_shape)
    parts.append(varint_bytes(len(header.side_info)))
    for key, value in header.side_info.items():
        parts.append(_string(key))
        if isinstance(value, str):
            parts += [bytes([_TAG_STR]), _string(value)]
        elif isinstance(value, int):
            parts += [bytes([_TAG_INT]), varint_bytes(_zigzag(value))]
        else:
            parts += [bytes([_TAG_FLOAT]), struct.pack("<d", value)]
    return b"".join(parts)


def _decode_header(data: bytes, version: int) -> Header:
    reader = ByteReader(data, where="header")
    modality = reader.string("modality")
    model = reader.string("model")
    digest = reader.take(DIGEST_BYTES, "weights digest")
    coder = _read_compact_coder(reader) if version == FORMAT_VERSION else reader.string("coder")
    ndim = reader.varint("latent rank", MAX_LATENT_DIMS)
    shape = tuple(reader.varint("latent dimension", MAX_LATENT_ELEMENTS) for _ in range(ndim))
    count = reader.varint("side-info count", MAX_SIDE_INFO_ENTRIES)
    side_info: dict[str, SideValue] = {}
    for _ in range(count):
        key = reader.string("side-info key")
        if key in side_info:
            raise FormatError(f"side-info key {key!r} appears twice")
        tag = reader.u8("side-info type")
        if tag == _TAG_INT:
            side_info[key] = _unzigzag(reader.varint("side-info integer", (1 << 64) - 1))
        elif tag == _TAG_FLOAT:
            side_info[key] = struct.unpack("<d", reader.take(8, "side-info float"))[0]
        elif tag == _TAG_STR:
            side_info[key] = reader.string("side-info string")
        else:
            raise FormatError(f"unknown side-info type tag {tag} for {key!r}")
    if reader.remaining:
        raise FormatError(f"{reader.remaining} unexpected bytes at the end of the header")
    return Header(modality, model, digest, shape, coder, side_info)


def _compact_coder(coder: str) -> bytes:
    """Version 3's coder field: the coder's byte (or the escape and its name), then the
    operating point's label, empty for the default point (which no file labels)."""
    name, colon, label = coder.partition(":")
    if colon and not label:
        raise FormatError(f"coder field {coder!r} names an empty operating point")
    coder_id = _CODER_IDS.index(name) if name in _CODER_IDS else _CODER_ESCAPE
    named = _string(name) if coder_id == _CODER_ESCAPE else b""
    return bytes([coder_id]) + named + _string(label)


def _read_compact_coder(reader: ByteReader) -> str:
    """Inverse of :func:`_compact_coder`, as the ``name[:label]`` spelling of version 1."""
    coder_id = reader.u8("coder")
    if coder_id == _CODER_ESCAPE:
        name = reader.string("coder name")
        if name in _CODER_IDS:
            raise FormatError(f"coder {name!r} is spelt out where its byte belongs")
    elif coder_id < len(_CODER_IDS):
        name = _CODER_IDS[coder_id]
    else:
        raise FormatError(f"unknown coder byte {coder_id}")
    label = reader.string("operating point")
    return f"{name}:{label}" if label else name


class ByteReader:
    """A cursor over untrusted bytes that refuses to read past the end."""

    def __init__(self, data: bytes, where: str = "file") -> None:
        self._data = memoryview(data)
        self._where = where
        self.position = 0

    @property
    def remaining(self) -> int:
        return len(self._data) - self.position

    def take(self, count: int, what: str) -> bytes:
        if count > self.remaining:
            raise FormatError(
                f"truncated {self._where}: {what} needs {count} bytes, {self.remaining} remain"
            )
        chunk = bytes(self._data[self.position : self.position + count])
        self.position += count
        return chunk

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def varint(self, what: str, maximum: int) -> int:
        value = 0
        for index in range(MAX_VARINT_BYTES):
            byte = self.u8(what)
            value |= (byte & 0x7F) << (7 * index)
            if not byte & 0x80:
                if value > maximum:
                    raise FormatError(f"{what} {value} exceeds the maximum {maximum}")
                return value
        raise FormatError(f"{what} is not a valid varint")

    def string(self, what: str) -> str:
        raw = self.take(self.varint(f"{what} length", MAX_STRING_BYTES), what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError(f"{what} is not valid UTF-8") from None


def varint_bytes(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _string(value: str) -> bytes:
    raw = value.encode("utf-8")
    return varint_bytes(len(raw)) + raw


def _zigzag(value: int) -> int:
    return (value << 1) ^ (value >> 63)


def _unzigzag(value: int) -> int:
    return (value >> 1) ^ -(value & 1)

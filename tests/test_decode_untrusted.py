"""Untrusted .ucz bytes end in a valid latent or a FormatError/ModelError, never worse.

The path and its oracle are tests/decode_path.py: what ``unicomp info`` and ``unicomp
decompress`` run before the generator. tests/fuzz/ runs the same path for longer.
"""

from __future__ import annotations

import dataclasses
import math
import struct
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import random_model, sensor_plugin
from decode_path import DecodePath, seed_files
from hypothesis import given, settings
from hypothesis import strategies as st

from unicomp import api, cli
from unicomp.api import load_codec
from unicomp.core import container
from unicomp.core.catalog import MODEL_PATH_ENV
from unicomp.core.checkpoint import load_model, save_model
from unicomp.core.entropy import EntropyTables
from unicomp.core.refinement import Refinement
from unicomp.errors import FormatError, ModelError
from unicomp.plugins.manager import build_registry

MODALITIES = ("sensor", "image", "speech")
OUTCOMES = {"decoded", "FormatError", "ModelError"}
NAMES = ("sensor-default", "image-v1", "", ".", "..", "../models/image-v1", "/etc/hosts", "a\\b")
CODERS = ("rans16", "rans16ctx:2kbps", "rans16:0.12bpp", "rans16:1kbps", "rans16:x", "rans32")


@pytest.fixture(scope="module")
def path(sensor_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DecodePath]:
    """The decode path over the sensor model and random-weight image and speech models."""
    folder = tmp_path_factory.mktemp("models")
    registry = build_registry(autoload=False, extra_plugins=[sensor_plugin])
    for name in ("image", "speech"):
        random_model(registry.modality(name), folder)
    registry.model_dirs[:0] = [sensor_model.parent, folder]
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(MODEL_PATH_ENV, raising=False)
        yield DecodePath(registry, tmp_path_factory.mktemp("scratch"))


@pytest.fixture(scope="module")
def seeds(path: DecodePath) -> dict[str, list[bytes]]:
    """Valid files of each modality, at each operating point of its model."""
    registry = path.registry
    names = {name: registry.modality(name).default_config().name for name in MODALITIES}
    return {name: seed_files(load_codec(names[name], registry=registry)) for name in MODALITIES}


#: Bytes to overwrite, each at a fraction of the data's length.
EDITS = st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=4)


def seed_of(seeds: dict[str, list[bytes]], modality: str, pick: int) -> bytes:
    return seeds[modality][pick % len(seeds[modality])]


def mutated(data: bytes, edits: list[tuple[float, int]], kept: float) -> bytes:
    """``data`` with ``edits`` made, then cut to the fraction ``kept`` of its length."""
    changed = bytearray(data)
    for where, byte in edits:
        changed[int(where * len(changed))] = byte
    return bytes(changed[: round(kept * len(changed))])


def with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def changed(data: bytes, payload: bytes | None = None, **fields: object) -> bytes:
    """``data`` re-packed with some header fields (and the payload) replaced."""
    header, old_payload = container.unpack(data)
    new_payload = old_payload if payload is None else payload
    return container.pack(dataclasses.replace(header, **fields), new_payload)


@st.composite
def latent_shapes(draw: st.DrawFn, channels: int) -> tuple[int, ...]:
    """Any shape the container allows, often with the model's channel count first."""
    room = container.MAX_LATENT_ELEMENTS
    shape = []
    for axis in range(draw(st.integers(1, container.MAX_LATENT_DIMS))):
        keep = axis == 0 and channels <= room and draw(st.booleans())
        size = channels if keep else draw(st.integers(1, room))
        shape.append(size)
        room //= size
    return tuple(shape)


def test_valid_files_of_every_modality_decode(path: DecodePath, seeds) -> None:
    for name in MODALITIES:
        assert {path(data) for data in seeds[name]} == {"decoded"}, name


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(MODALITIES), st.integers(0, 99), EDITS, st.floats(0, 1), st.booleans())
def test_mutated_or_truncated_files_decode_or_are_refused(
    path: DecodePath, seeds, modality: str, pick: int, edits, kept: float, fix_crc: bool
) -> None:
    data = mutated(seed_of(seeds, modality, pick), edits, kept)
    if fix_crc and len(data) >= 4:
        data = with_crc(data[:-4])
    assert path(data) in OUTCOMES


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_random_bytes_are_refused(path: DecodePath, data: bytes, behind_magic: bool) -> None:
    if behind_magic:
        data = with_crc(container.MAGIC + bytes([container.FORMAT_VERSION]) + data)
    assert path(data) in {"FormatError", "ModelError"}


def names_a_point(coder: str) -> bool:
    """Whether a writer accepts the coder field: no ``name:`` with an empty point."""
    return coder.partition(":")[1:] != (":", "")


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(MODALITIES), st.integers(0, 99), st.data())
def test_any_header_a_writer_accepts_decodes_or_is_refused(
    path: DecodePath, seeds, modality: str, pick: int, data: st.DataObject
) -> None:
    seed = seed_of(seeds, modality, pick)
    header, payload = container.unpack(seed)
    side_values = st.one_of(
        st.integers(-(1 << 63), (1 << 63) - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=8),
    )
    fields = data.draw(
        st.fixed_dictionaries(
            {},
            optional={
                "latent_shape": latent_shapes(header.latent_shape[0]),
                "coder": st.sampled_from(CODERS) | st.text(max_size=12).filter(names_a_point),
                "model": st.sampled_from(NAMES),
                "modality": st.sampled_from([*MODALITIES, "video"]),
                "side_info": st.dictionaries(st.text(max_size=6), side_values, max_size=4),
            },
        )
    )
    cut = data.draw(st.integers(0, len(payload)))
    new_payload = data.draw(
        st.sampled_from([payload, payload[:cut], payload + bytes(cut)]) | st.binary(max_size=64)
    )
    assert path(changed(seed, new_payload, **fields)) in OUTCOMES


@pytest.mark.parametrize("modality", MODALITIES)
def test_a_declared_oversized_latent_is_refused_before_allocation(
    path: DecodePath, seeds, modality: str
) -> None:
    seed = seeds[modality][0]
    assert path(seed) == "decoded"  # the model is loaded before memory is measured
    channels, *extent = container.unpack(seed)[0].latent_shape
    extent[-1] = container.MAX_LATENT_ELEMENTS // (channels * math.prod(extent[:-1]))
    data = changed(seed, latent_shape=(channels, *extent))
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match="cannot hold"):
            path.decode(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"coder": "rans16:x"}, "unknown entropy coder"),
        ({"coder": "rans32"}, "unknown entropy coder"),
        ({"latent_shape": (2, 4, 1)}, "2 axes"),
        ({"latent_shape": (2,)}, "2 axes"),
        ({"latent_shape": (3, 4)}, "2 channels"),
    ],
)
def test_a_header_the_model_cannot_decode_is_a_format_error(
    path: DecodePath, seeds, fields: dict[str, object], message: str
) -> None:
    with pytest.raises(FormatError, match=message):
        path.decode(changed(seeds["sensor"][0], **fields))


@pytest.mark.parametrize("name", ["../models/sensor-default", "/etc/hosts", ".x", "", "a/b"])
def test_decompress_looks_a_header_model_name_up_and_never_follows_it(
    path: DecodePath, seeds, tmp_path: Path, name: str
) -> None:
    source = tmp_path / "in.ucz"
    source.write_bytes(changed(seeds["sensor"][0], model=name))
    with pytest.raises(ModelError, match="is not a model name"):
        api.decompress(source, tmp_path / "out.csv", registry=path.registry)


def test_a_file_of_a_modality_no_plugin_provides_is_a_model_error(
    path: DecodePath, seeds, tmp_path: Path
) -> None:
    source = tmp_path / "in.ucz"
    source.write_bytes(changed(seeds["sensor"][0], modality="video"))
    with pytest.raises(ModelError, match="no installed plugin"):
        api.decompress(source, tmp_path / "out.csv", registry=path.registry)


def test_info_shows_header_strings_verbatim(
    path: DecodePath, seeds, capsys: pytest.CaptureFixture[str]
) -> None:
    header = container.unpack(seeds["sensor"][0])[0]
    path.file.write_bytes(changed(seeds["sensor"][0], side_info={**header.side_info, "n": "[/x]"}))
    cli.info(path.file, as_json=False)
    assert "[/x]" in capsys.readouterr().out


def test_a_model_whose_tables_do_not_fit_its_centers_is_refused(
    path: DecodePath, sensor, tmp_path: Path
) -> None:
    card = path.registry.model_dirs[0] / "sensor-default.json"
    model = load_model(card, sensor.build_networks)
    tables = model.point().search_tables
    wrong = EntropyTables.uniform(tables.channels, tables.num_symbols + 1)
    model.set_point(dataclasses.replace(model.point(), search_tables=wrong))
    saved = save_model(model, tmp_path)
    with pytest.raises(ModelError, match="centers but entropy tables"):
        load_model(saved, sensor.build_networks)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(MODALITIES), st.integers(0, 99), st.data())
def test_any_refinement_section_decodes_or_is_refused(
    path: DecodePath, seeds, modality: str, pick: int, data: st.DataObject
) -> None:
    """A version 2 file: a valid section for the seed's decode, mutated, cut or random."""
    header, payload = container.unpack(seed_of(seeds, modality, pick))
    rank = data.draw(st.integers(1, 3))
    cells = tuple(data.draw(st.integers(1, 64)) for _ in range(rank))
    values = np.array(data.draw(st.lists(st.integers(-500, 500), min_size=1, max_size=16)))
    section = Refinement(cells, 0.01, values.reshape(1, -1, *[1] * (rank - 1))).encode()
    # At least one byte: an empty section would make a version 1 file.
    cut = mutated(section, data.draw(EDITS), data.draw(st.floats(0, 1))) or section[:1]
    section = data.draw(st.sampled_from([cut]) | st.binary(min_size=1))
    assert path(container.pack(header, payload, section)) in OUTCOMES

"""Committed .ucz files of the bundled models decode to exactly what they did when made.

A change to the container, the entropy coder, a network or the bundled weights that
would break files already in users' hands fails here. If the change is intended (a new
model release), regenerate with tests/vectors/make_vectors.py and say so in the notes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from vector_cases import CASES, VECTORS, decoded_digests, sha256, write_input

from unicomp import api

ENTRIES = json.loads((VECTORS / "vectors.json").read_text(encoding="utf-8"))
BY_CASE = {case.name: case for case in CASES}


def test_every_case_has_a_committed_vector() -> None:
    assert sorted(entry["case"] for entry in ENTRIES) == sorted(BY_CASE)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda entry: entry["case"])
def test_vector_decodes_to_the_recorded_indices_and_samples(entry, tmp_path: Path) -> None:
    ucz = VECTORS / entry["file"]
    assert sha256(ucz.read_bytes()) == entry["sha256"]
    digests = decoded_digests(BY_CASE[entry["case"]], ucz, tmp_path)
    assert digests == {key: entry[key] for key in digests}


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_compressing_the_same_input_twice_gives_identical_bytes(case, tmp_path: Path) -> None:
    source = write_input(case, tmp_path)
    first = api.compress(source, tmp_path / "first.ucz", rate=case.rate).output.read_bytes()
    second = api.compress(source, tmp_path / "second.ucz", rate=case.rate).output.read_bytes()
    assert first == second

"""Committed .ucz files of the bundled models decode as the decoding contract promises.

The contract (docs/format.md): decoded indices are bit-exact everywhere; decoded samples
are identical on every x86-64 CPU with AVX2 or newer, and within a tolerance elsewhere
(images one level, speech 40 dB SNR). Other CPUs are emulated here by starting fresh
processes under lower kernel settings this machine accepts.

A change to the container, the entropy coder, a network or the bundled weights that
would break files already in users' hands fails here. If the change is intended (a new
model release), regenerate with tests/vectors/make_vectors.py and say so in the notes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from vectors.vector_cases import CASES, VECTORS, decode, sha256, write_input

from unicomp import api
from unicomp.core import container, kernels
from unicomp.plugins.manager import get_registry

ENTRIES = json.loads((VECTORS / "vectors.json").read_text(encoding="utf-8"))
BY_CASE = {case.name: case for case in CASES}
DECODE_SCRIPT = VECTORS / "decode_vectors.py"
COVERED = kernels.covered()


@dataclass(frozen=True)
class Setting:
    """A kernel setting to decode under: the environment and arguments of the process,
    and whether the contract makes its samples exact."""

    name: str
    environment: dict[str, str]
    arguments: tuple[str, ...]
    exact: bool


#: The lower settings decoded here: every pin off, and the lowest kernels of every
#: library; benchmarks/kernel_settings.py measures each setting in between too. (Each
#: is a fresh process, mostly importing torch: the suite's time budget allows few.)
TESTED_LOWER = ("native kernels", "lowest")


def _settings() -> list[Setting]:
    """The contract's own setting (at another thread count), then the lower ones."""
    lower = {k: v for k, v in kernels.lower_settings().items() if k in TESTED_LOWER}
    own = Setting("pinned, 4 threads", {}, ("--threads", "4"), COVERED)
    return [own, *(Setting(name, env, (), False) for name, env in lower.items())]


SETTINGS = _settings()


@pytest.fixture(scope="module")
def decoded_under(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Decode the vectors under every setting, in fresh processes run side by side (each
    spends most of its time importing torch); the folder each wrote, by setting."""
    inherited = {k: v for k, v in os.environ.items() if k not in kernels.PINS}
    folders, processes = {}, []
    for setting in SETTINGS:
        folder = folders[setting.name] = tmp_path_factory.mktemp("decoded")
        with (folder / "stderr.txt").open("w") as errors:
            processes.append(
                subprocess.Popen(
                    [sys.executable, str(DECODE_SCRIPT), str(folder), *setting.arguments],
                    env={**inherited, **setting.environment},
                    stdout=subprocess.DEVNULL,
                    stderr=errors,
                )
            )
    for setting, process in zip(SETTINGS, processes, strict=True):
        if process.wait(timeout=600) != 0:
            errors = (folders[setting.name] / "stderr.txt").read_text()
            pytest.fail(f"{setting.name}: {errors[-2000:]}")
    return folders


def test_every_case_has_a_committed_vector_and_reference_samples() -> None:
    assert sorted(entry["case"] for entry in ENTRIES) == sorted(BY_CASE)
    for entry in ENTRIES:
        samples = np.load(BY_CASE[entry["case"]].reference_samples)
        assert sha256(np.ascontiguousarray(samples).tobytes()) == entry["output_sha256"]


def test_speech_vectors_pin_files_with_and_without_the_post_filter() -> None:
    def side_info(case: str) -> dict:
        return dict(container.unpack((VECTORS / f"{case}.ucz").read_bytes())[0].side_info)

    assert "pf" not in side_info("speech-v2-1s") and "pf" not in side_info("speech-v2-1s-1kbps")
    assert side_info("speech-v2-1s-postfilter")["pf"] > 0


def test_vectors_pin_every_format_version_a_reader_reads() -> None:
    versions = {(VECTORS / entry["file"]).read_bytes()[4] for entry in ENTRIES}
    assert versions == set(container.READ_VERSIONS)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda entry: entry["case"])
def test_vector_decodes_to_the_recorded_indices_and_samples(entry, tmp_path: Path) -> None:
    case = BY_CASE[entry["case"]]
    ucz = VECTORS / entry["file"]
    assert sha256(ucz.read_bytes()) == entry["sha256"]
    digests, samples = decode(case, ucz, tmp_path)
    _assert_contract(case, entry, digests, samples, exact=kernels.pinned())


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda setting: setting.name)
def test_decoding_meets_the_contract_under_each_kernel_setting(
    setting: Setting, decoded_under: dict[str, Path]
) -> None:
    folder = decoded_under[setting.name]
    decoded = json.loads((folder / "digests.json").read_text(encoding="utf-8"))
    for entry in ENTRIES:
        case = BY_CASE[entry["case"]]
        samples = np.load(folder / f"{case.name}.npy")
        _assert_contract(case, entry, decoded[case.name], samples, exact=setting.exact)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_compressing_the_same_input_twice_gives_identical_bytes(case, tmp_path: Path) -> None:
    """At the default rate (the 64x48 image is too small for it: its rate search ends at
    its smallest file), and at the case's operating point with the point's own weight."""
    source = write_input(case, tmp_path)
    first = api.compress(source, tmp_path / "first.ucz").output.read_bytes()
    second = api.compress(source, tmp_path / "second.ucz").output.read_bytes()
    assert first == second
    codec = api.load_codec(modality=get_registry().modality_for(source).name)
    signal = codec.modality.load(source)
    point = case.rate or codec.model.point().label
    assert (
        codec.encode(signal, operating_point=point)[0]
        == codec.encode(signal, operating_point=point)[0]
    )


def _assert_contract(
    case, entry: dict[str, str], digests: dict[str, str], samples: np.ndarray, exact: bool
) -> None:
    """Indices always bit-exact; samples identical where ``exact``, else within the
    case's tolerance of the committed reference samples."""
    assert digests["model"] == entry["model"]
    assert digests["weights_digest"] == entry["weights_digest"]
    assert digests["indices_sha256"] == entry["indices_sha256"]
    if exact:
        assert digests["output_sha256"] == entry["output_sha256"], case.name
    else:
        assert case.tolerance(np.load(case.reference_samples), samples), case.name

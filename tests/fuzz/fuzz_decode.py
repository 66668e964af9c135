"""Fuzz what ``unicomp info`` and ``unicomp decompress`` run on untrusted .ucz bytes.

The path and its oracle are tests/decode_path.py (up to the generator network): every
input must end in a valid index tensor or a FormatError/ModelError, and here also take
under ``TIME_LIMIT_S`` and under ``MEMORY_LIMIT_MB`` of new peak memory.

Seeds are real files of each modality: a tiny trained sensor model (the example
plugin, trained as the test suite does) and the image and speech default
configurations with random weights (decoding up to the generator needs no trained
weights). Most mutations either re-pack a changed header or payload, or fix the CRC
after a byte-level mutation, so that they reach the code behind the checksum.

Runs under atheris (coverage-guided) when it is installed, else (or with ``--plain``)
as a seeded random-mutation loop. See README.md beside this file.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import random
import shutil
import struct
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

try:
    import atheris
except ImportError:  # the plain loop needs no fuzzing engine
    atheris = None

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: conftest, decode_path

_instrumented = (
    atheris.instrument_imports(include=["unicomp", "unicomp_sensor"])
    if atheris is not None
    else contextlib.nullcontext()
)
with _instrumented:
    import conftest  # noqa: E402
    import numpy as np  # noqa: E402
    import torch  # noqa: E402
    from decode_path import DecodePath, seed_files  # noqa: E402

    from unicomp.api import load_codec  # noqa: E402
    from unicomp.core import container  # noqa: E402
    from unicomp.core.catalog import MODEL_PATH_ENV  # noqa: E402
    from unicomp.errors import FormatError  # noqa: E402
    from unicomp.plugins.manager import Registry, build_registry  # noqa: E402

MODALITIES = ("sensor", "image", "speech")
TIME_LIMIT_S = 1.0
MEMORY_LIMIT_MB = 128
MAX_INPUT_BYTES = 4096
CODERS = ("rans16", "rans16:", "rans16:0.12bpp", "rans16:1kbps", "rans16:nope", "rans32")


def build_models(folder: Path) -> tuple[Registry, dict[str, Path], list[str]]:
    """A registry that finds one model per modality in ``folder/models``, first.

    Also returns names a header may carry that the lookup must refuse: paths, some of
    them to a real model in ``folder/outside``.
    """
    sensor = conftest.SensorModality()
    readings = folder / "sensor-data"
    readings.mkdir()
    rng = np.random.default_rng(0)
    for index in range(8):
        conftest.write_csv(readings / f"r{index}.csv", conftest.synthetic_reading(rng, 2000))
    registry = build_registry(autoload=False, extra_plugins=[conftest.sensor_plugin])
    models, outside = folder / "models", folder / "outside"
    cards = {"sensor": conftest.train(sensor, conftest.tiny_config(sensor), readings, models)}
    for name in ("image", "speech"):
        cards[name] = conftest.random_model(registry.modality(name), models)
    os.environ.pop(MODEL_PATH_ENV, None)
    registry.model_dirs.insert(0, models)
    stray = conftest.random_model(registry.modality("image"), outside, seed=1)
    paths = [str(stray), str(outside), f"../{outside.name}/{stray.stem}", "/etc/hosts"]
    return registry, cards, ["", ".", "..", "a\x00b", *paths]


class Target:
    """One execution: the decode path on some bytes, its outcome counted, its cost checked."""

    def __init__(self, path: DecodePath) -> None:
        self.path = path
        self.outcomes = {"decoded": 0, "FormatError": 0, "ModelError": 0}
        self.started = time.monotonic()

    def __call__(self, data: bytes) -> str:
        _reset_peak_memory()
        before_kb = _memory_kb("VmRSS")
        started = time.monotonic()
        outcome = self.path(data)
        elapsed = time.monotonic() - started
        assert elapsed < TIME_LIMIT_S, f"{elapsed:.2f} s on {len(data)} bytes"
        grown_mb = (_memory_kb("VmHWM") - before_kb) / 1024
        assert grown_mb < MEMORY_LIMIT_MB, f"peak memory grew {grown_mb:.0f} MB"
        self.outcomes[outcome] += 1
        return outcome

    @property
    def executions(self) -> int:
        return sum(self.outcomes.values())

    def summary(self) -> str:
        seconds = time.monotonic() - self.started
        return f"{self.executions} executions in {seconds:.0f} s: {self.outcomes}"


def _reset_peak_memory() -> None:
    """Start a new peak-RSS measurement (Linux: 5 clears the high-water mark)."""
    Path("/proc/self/clear_refs").write_text("5")


def _memory_kb(field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak since the last reset) of this process, in kB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


@dataclasses.dataclass(frozen=True)
class Mutator:
    """Mutations that mostly reach the code behind the CRC.

    Half re-pack a parsed file (the input, or a seed when the input does not parse)
    with one header field or the payload changed; the rest mutate bytes and then,
    mostly, fix the CRC.
    """

    seeds: list[bytes]
    names: list[str]

    def __call__(
        self, data: bytes, rng: random.Random, byte_mutate: Callable[[bytes, random.Random], bytes]
    ) -> bytes:
        if rng.random() < 0.5:
            return self.repack(data, rng)
        data = byte_mutate(data, rng)
        if len(data) > 4 and rng.random() < 0.8:
            data = data[:-4] + struct.pack("<I", zlib.crc32(data[:-4]))
        return data

    def repack(self, data: bytes, rng: random.Random) -> bytes:
        """A valid container whose header or payload says something a decoder must check."""
        try:
            header, payload = container.unpack(data)
        except FormatError:
            header, payload = container.unpack(rng.choice(self.seeds))
        shape = list(header.latent_shape)
        change = rng.randrange(7)
        if change == 0:  # any extent, up to the container's limit
            axis = rng.randrange(len(shape))
            room = container.MAX_LATENT_ELEMENTS // math.prod(shape[:axis] + shape[axis + 1 :])
            wanted = [1, shape[axis] + 1, 2 * shape[axis], 1 << rng.randrange(27), room]
            shape[axis] = min(room, rng.choice(wanted))
            fields = {"latent_shape": tuple(shape)}
        elif change == 1:  # a rank the model does not have
            fewer = len(shape) > 1 and rng.random() < 0.5
            fields = {"latent_shape": tuple(shape[:-1] if fewer else [*shape, rng.randint(1, 9)])}
        elif change == 2:
            fields = {"coder": rng.choice(CODERS)}
        elif change == 3:
            fields = {"model": rng.choice(self.names)}
        elif change == 4:
            fields = {"modality": rng.choice([*MODALITIES, "", "video"])}
        elif change == 5:
            key = rng.choice([*header.side_info, "x"])
            value = rng.choice([0, -1, 1 << 62, -(1 << 63), 0.5, -1e308, "", "RGB", "[/x]"])
            fields = {"side_info": {**header.side_info, key: value}}
        else:  # cut, extend or replace the payload
            cut = rng.randrange(len(payload) + 1)
            payload = rng.choice([payload[:cut], payload + rng.randbytes(cut), rng.randbytes(cut)])
            fields = {}
        try:
            return container.pack(dataclasses.replace(header, **fields), payload)
        except FormatError:  # a change the writer refuses (too many axes, say)
            return data


def plain_byte_mutate(data: bytes, rng: random.Random) -> bytes:
    """libFuzzer-like byte mutations for the loop that runs without atheris."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(data) + 1)
        kind = rng.randrange(5)
        if kind == 0 and data:
            data[min(at, len(data) - 1)] ^= 1 << rng.randrange(8)
        elif kind == 1 and data:
            data[min(at, len(data) - 1)] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)])
        elif kind == 2:
            data[at:at] = rng.randbytes(rng.randint(1, 8))
        elif kind == 3:
            del data[at : at + rng.randint(1, 8)]
        else:
            data = data[:at]
    return bytes(data[:MAX_INPUT_BYTES])


def run_plain(target: Target, mutator: Mutator, runs: int, seed: int) -> None:
    """Mutate seeds and earlier inputs that decoded; a failing input is saved, then raised."""
    rng = random.Random(seed)
    pool = list(mutator.seeds)
    while target.executions < runs:
        data = mutator(rng.choice(pool), rng, plain_byte_mutate)
        try:
            outcome = target(data)
        except BaseException:
            Path("crash-plain.ucz").write_bytes(data)
            print("failing input written to crash-plain.ucz", file=sys.stderr)
            raise
        if outcome == "decoded" and len(data) <= MAX_INPUT_BYTES and rng.random() < 0.05:
            pool.append(data)


def run_atheris(target: Target, mutator: Mutator, runs: int, corpus: Path, args: list[str]) -> None:
    """Coverage-guided fuzzing from a corpus folder filled with the seeds."""
    corpus.mkdir(exist_ok=True)
    for index, seed in enumerate(mutator.seeds):
        (corpus / f"seed{index}.ucz").write_bytes(seed)

    def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        return mutator(data, rng, lambda d, _: atheris.Mutate(d, max_size))[:max_size]

    def test_one_input(data: bytes) -> None:
        target(data)
        if target.executions >= runs:  # libFuzzer would run on: end the process here
            print(target.summary(), flush=True)
            shutil.rmtree(target.path.file.parent)
            os._exit(0)

    flags = [f"-max_len={MAX_INPUT_BYTES}", f"-timeout={int(TIME_LIMIT_S) + 1}"]
    argv = [sys.argv[0], *flags, *args, str(corpus)]
    atheris.Setup(argv, test_one_input, custom_mutator=custom_mutator)
    atheris.Fuzz()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modality", choices=MODALITIES, required=True, help="seed corpus")
    parser.add_argument("--runs", type=int, default=10_000, help="executions, seeds included")
    parser.add_argument("--seed", type=int, default=0, help="random seed (plain loop)")
    parser.add_argument("--plain", action="store_true", help="plain loop even with atheris")
    parser.add_argument("--replay", nargs="+", type=Path, help="run these files and stop")
    options, libfuzzer_args = parser.parse_known_args()
    torch.set_num_threads(1)
    scratch = Path(tempfile.mkdtemp(prefix="ucz-fuzz-"))
    registry, cards, hostile_names = build_models(scratch)
    seeds = seed_files(load_codec(cards[options.modality], registry=registry))
    mutator = Mutator(seeds, [card.stem for card in cards.values()] + hostile_names)
    target = Target(DecodePath(registry, scratch))
    print(f"{len(seeds)} {options.modality} seeds", file=sys.stderr, flush=True)
    if atheris is not None and not (options.plain or options.replay):
        run_atheris(target, mutator, options.runs, scratch / "corpus", libfuzzer_args)
    else:
        try:
            for file in options.replay or []:
                print(f"{file}: {target(file.read_bytes())}")
            if not options.replay:
                run_plain(target, mutator, options.runs, options.seed)
                print(target.summary())
        finally:
            shutil.rmtree(scratch)


if __name__ == "__main__":
    main()

"""What the CLI runs on an untrusted .ucz file, up to the generator network, with an oracle.

Shared by tests/test_decode_untrusted.py and tests/fuzz/fuzz_decode.py: ``unicomp info``
(both renderings), then the steps of ``api.decompress`` with models loaded once: the
lookup of the header's model name, then ``Codec.decode_indices`` (container,
``Codec.check_header``, entropy decoder). Every input must end in a valid index
tensor or a FormatError/ModelError; any other exception or a failed assertion is a bug.
:func:`seed_files` makes the valid files that mutations start from.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import torch
from unicomp_sensor.modality import SensorSignal
from unicomp_sensor.synthetic import synthetic_reading

from unicomp import cli
from unicomp.api import load_codec
from unicomp.core import container
from unicomp.core.catalog import find_model
from unicomp.core.codec import Codec
from unicomp.errors import FormatError, ModelError
from unicomp.modalities.image.io import ImageSignal
from unicomp.modalities.speech.modality import SpeechSignal
from unicomp.plugins.manager import Registry


class DecodePath:
    """The decode path over one registry; ``scratch`` holds the file ``unicomp info`` reads."""

    def __init__(self, registry: Registry, scratch: Path) -> None:
        self.registry = registry
        self.file = scratch / "input.ucz"
        self.codecs: dict[Path, Codec] = {}

    def __call__(self, data: bytes) -> str:
        """``"decoded"``, or the name of the error that refused ``data``."""
        try:
            self.info(data)
            header, indices, codec = self.decode(data)
        except (FormatError, ModelError) as error:
            return type(error).__name__
        assert indices.dtype == torch.int64 and tuple(indices.shape) == header.latent_shape
        assert len(header.latent_shape) == codec.latent_rank
        assert 0 <= int(indices.min()) <= int(indices.max()) < codec.model.quantizer.num_centers
        return "decoded"

    def info(self, data: bytes) -> None:
        """``unicomp info FILE`` and ``unicomp info --json FILE``; the JSON must be strict."""
        self.file.write_bytes(data)
        table, text = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(table):
            cli.info(self.file, as_json=False)
        with contextlib.redirect_stdout(text):
            cli.info(self.file, as_json=True)
        json.loads(text.getvalue(), parse_constant=_refuse_constant)

    def decode(self, data: bytes) -> tuple[container.Header, torch.Tensor, Codec]:
        """``api.decompress`` up to the generator; a trusted model is loaded only once."""
        header, _ = container.unpack(data)
        card = find_model(header.model, self.registry.model_dirs)
        assert card.parent in self.registry.model_dirs, f"{header.model!r} found {card}"
        if card not in self.codecs:
            self.codecs[card] = load_codec(card, registry=self.registry)
        header, indices = self.codecs[card].decode_indices(data)
        return header, indices, self.codecs[card]


def seed_files(codec: Codec) -> list[bytes]:
    """Small real files of the codec's modality: each signal at each operating point."""
    rng = np.random.default_rng(1)
    signals = {
        "sensor": lambda: [SensorSignal(synthetic_reading(rng, n)) for n in (2, 5, 300)],
        "image": lambda: [
            ImageSignal(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), "RGB"),
            ImageSignal(rng.integers(0, 256, (40, 70, 1), dtype=np.uint8), "L"),
        ],
        "speech": lambda: [
            SpeechSignal(0.1 * rng.standard_normal((8000, 1)).astype(np.float32), 16000),
            SpeechSignal(0.1 * rng.standard_normal((6000, 2)).astype(np.float32), 8000),
        ],
    }[codec.modality.name]()
    points = [point.label for point in codec.model.points]
    encode = codec.encode
    return [encode(s, admm_iterations=0, operating_point=p)[0] for s in signals for p in points]


def _refuse_constant(name: str) -> None:
    raise AssertionError(f"unicomp info --json printed {name}, which is not JSON")

"""The speech decoder's own signal processing on the exact log-mel: the ceiling.

No model and no quantizer: the speech modality's analysis gives the 128-band log-mel,
sent as float16 beside the side info, and its synthesis (NNLS → PGHI → Griffin-Lim)
turns it back into sound. No unicomp speech model can sound better than this; its
"rate" is that of the float16 mel, far above any codec's, and only marks the point.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import torch

from unicomp.bench.base import BaselineError, Quality
from unicomp.modalities.speech.modality import SpeechModality, SpeechSignal

_SIZES = struct.Struct(">IHI")


class MelCeiling:
    """Exact log-mel → the speech modality's synthesis."""

    name = "mel-pghi"
    modality = "speech"
    qualities: tuple[Quality, ...] = ("float16",)
    description = (
        "mel-pghi: unquantized log-mel (float16) through the speech modality's synthesis "
        "(NNLS, PGHI, Griffin-Lim): the magnitude-only ceiling of any unicomp speech model"
    )

    def __init__(self) -> None:
        self._speech = SpeechModality()

    def unavailable(self) -> str | None:
        return None

    def encode(self, signal: SpeechSignal, quality: Quality) -> bytes:
        x, side_info = self._speech.analysis(signal)
        side_info["pf"] = 0  # the post-filter makes up for a generator's smoothing, not here
        side = json.dumps(side_info, separators=(",", ":")).encode()
        mel = x.numpy().astype(">f2")
        return _SIZES.pack(len(side), *mel.shape) + side + mel.tobytes()

    def decode(self, data: bytes, reference: Any) -> SpeechSignal:
        if len(data) < _SIZES.size:
            raise BaselineError("mel bitstream is shorter than its header")
        side_length, bands, frames = _SIZES.unpack_from(data)
        start = _SIZES.size + side_length
        if len(data) != start + 2 * bands * frames:
            raise BaselineError("mel bitstream length does not match its header")
        side_info = json.loads(data[_SIZES.size : start])
        mel = np.frombuffer(data, dtype=">f2", offset=start).reshape(bands, frames)
        return self._speech.synthesis(torch.from_numpy(mel.astype(np.float32)), side_info)

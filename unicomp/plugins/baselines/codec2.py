"""Codec2 through Debian's ``c2enc``/``c2dec`` on the 8 kHz mono mix.

The bitstream is c2enc's ``.c2`` file: 7 header bytes that name the mode, then the
frames; its whole size is the rate. The decoder's output lags its input by one frame
or so, which STOI (unlike PESQ) does not forgive, so a fixed delay per mode is dropped.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from unicomp.bench.base import BaselineError, Quality
from unicomp.modalities.speech.modality import SpeechSignal
from unicomp.plugins.baselines.convert import pcm16, speech_signal
from unicomp.plugins.baselines.tools import missing_tools, run_tool

SAMPLE_RATE = 8000
MODES: tuple[Quality, ...] = ("700C", "1200", "2400", "3200")
#: Mode numbers in byte 5 of the .c2 header (codec2 1.0's CODEC2_MODE_* values).
_MODE_IDS = {0: "3200", 1: "2400", 5: "1200", 8: "700C"}
_MAGIC = b"\xc0\xde\xc2"
_HEADER_BYTES = 7
#: Output lag in samples: the median over 20 train clips (asterisk-core-sounds-en) of
#: the envelope cross-correlation peak was 20.2-20.8 ms for 3200/2400/1200, 29.8 ms for
#: 700C (whose frames are 40 ms). Measured on train data, never on the evaluate set.
DELAY_SAMPLES = {"3200": 160, "2400": 160, "1200": 160, "700C": 240}


class Codec2:
    """Codec2 at one of its modes per sweep setting."""

    name = "codec2"
    modality = "speech"
    qualities = MODES
    description = (
        "codec2: Debian c2enc/c2dec, 8 kHz mono, .c2 file with its 7-byte header; "
        "decoder delay removed (20 ms; 700C 30 ms)"
    )

    def unavailable(self) -> str | None:
        return missing_tools(["c2enc", "c2dec"], "codec2")

    def encode(self, signal: SpeechSignal, quality: Quality) -> bytes:
        with tempfile.TemporaryDirectory() as folder:
            source, target = Path(folder) / "in.raw", Path(folder) / "out.c2"
            source.write_bytes(pcm16(signal, SAMPLE_RATE).tobytes())
            run_tool(["c2enc", str(quality), source, target])
            return target.read_bytes()

    def decode(self, data: bytes, reference: Any) -> SpeechSignal:
        if len(data) < _HEADER_BYTES or not data.startswith(_MAGIC):
            raise BaselineError("not a .c2 file: its header is missing")
        mode = _MODE_IDS.get(data[5])
        if mode is None:
            raise BaselineError(f"unexpected codec2 mode number {data[5]} in the header")
        with tempfile.TemporaryDirectory() as folder:
            source, target = Path(folder) / "in.c2", Path(folder) / "out.raw"
            source.write_bytes(data)
            run_tool(["c2dec", mode, source, target])
            samples = np.frombuffer(target.read_bytes(), dtype="<i2")
        return speech_signal(samples, SAMPLE_RATE, reference, DELAY_SAMPLES[mode])

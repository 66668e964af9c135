"""Opus through opus-tools' ``opusenc``/``opusdec``, tuned for speech.

The rate counts the whole Ogg Opus file (headers, tags and page overhead included), as
a file on disk would cost, but without the 512 bytes opusenc reserves by default for
later metadata edits (``--padding 0``); opusdec removes the encoder's pre-skip itself.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import soundfile as sf

from unicomp.bench.base import Quality
from unicomp.modalities.speech.modality import SpeechSignal
from unicomp.plugins.baselines.convert import pcm16, speech_signal
from unicomp.plugins.baselines.tools import missing_tools, run_tool

BITRATES_KBPS: tuple[Quality, ...] = (6, 8, 12, 16)
#: The rates opusdec can write; other inputs are decoded at 48 kHz.
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


class Opus:
    """Opus in VBR at a target bitrate per sweep setting."""

    name = "opus"
    modality = "speech"
    qualities = BITRATES_KBPS
    description = (
        "opus: opus-tools opusenc --speech --padding 0 --bitrate q (VBR, complexity 10), "
        "mono; rate of the whole Ogg file"
    )

    def unavailable(self) -> str | None:
        return missing_tools(["opusenc", "opusdec"], "opus-tools")

    def encode(self, signal: SpeechSignal, quality: Quality) -> bytes:
        with tempfile.TemporaryDirectory() as folder:
            source, target = Path(folder) / "in.wav", Path(folder) / "out.opus"
            sf.write(source, pcm16(signal, signal.sample_rate), signal.sample_rate)
            options = ("--quiet", "--speech", "--padding", 0, "--bitrate", quality)
            run_tool(["opusenc", *options, source, target])
            return target.read_bytes()

    def decode(self, data: bytes, reference: Any) -> SpeechSignal:
        rate = reference.sample_rate if reference.sample_rate in OPUS_RATES else 48000
        with tempfile.TemporaryDirectory() as folder:
            source, target = Path(folder) / "in.opus", Path(folder) / "out.wav"
            source.write_bytes(data)
            run_tool(["opusdec", "--quiet", "--rate", rate, source, target])
            samples, _ = sf.read(target, dtype="int16", always_2d=True)
        return speech_signal(samples[:, 0], rate, reference)

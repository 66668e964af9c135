"""The forms the baseline codecs take their input in, and back to the modalities' signals.

Images: every baseline codes 8-bit RGB, as CompressAI's bench does (grey is replicated,
16-bit rounded, alpha dropped), which is also what unicomp's image model sees. Speech:
mono 16-bit PCM at the rate the tool wants; decoded speech is cut or zero-padded to the
reference's duration, so every metric compares the same span.
"""

from __future__ import annotations

import numpy as np
import torch

from unicomp.modalities.image.io import ImageSignal, to_tensor
from unicomp.modalities.speech.modality import SpeechSignal

PCM_SCALE = 32768.0


def rgb8(signal: ImageSignal) -> np.ndarray:
    """``H x W x 3`` uint8 RGB pixels of any image signal."""
    return rgb8_from_tensor(to_tensor(signal))


def rgb8_from_tensor(x: torch.Tensor) -> np.ndarray:
    """A ``3 x H x W`` tensor in [0, 1] as ``H x W x 3`` uint8 pixels."""
    pixels = (x.detach().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    return np.ascontiguousarray(pixels.permute(1, 2, 0).numpy())


def rgb_signal(pixels: np.ndarray) -> ImageSignal:
    """Decoded ``H x W x 3`` uint8 pixels as an image signal (a writable copy)."""
    return ImageSignal(np.array(pixels, dtype=np.uint8, order="C"), "RGB")


def pcm16(signal: SpeechSignal, sample_rate: int) -> np.ndarray:
    """The mono mix at ``sample_rate`` as little-endian 16-bit samples."""
    scaled = np.round(signal.mono(sample_rate) * PCM_SCALE)
    return np.clip(scaled, -PCM_SCALE, PCM_SCALE - 1).astype("<i2")


def speech_signal(
    samples: np.ndarray, sample_rate: int, reference: SpeechSignal, delay: int = 0
) -> SpeechSignal:
    """Decoded mono samples (float or int16), ``delay`` samples dropped, fit to ``reference``.

    The result keeps the decoder's own rate; the metrics resample as they need.
    """
    wave = samples.astype(np.float32)
    if samples.dtype == np.int16:
        wave /= PCM_SCALE
    length = round(reference.duration * sample_rate)
    wave = wave[delay : delay + length]
    wave = np.pad(wave, (0, length - len(wave)))
    return SpeechSignal(wave[:, None], sample_rate)

"""The latent search's stand-in for STOI: band envelopes and their decorrelation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unicomp.modalities.speech.dsp import mel_centres
from unicomp.modalities.speech.intelligibility import (
    BAND_COUNT,
    SEGMENT_FRAMES,
    envelope_decorrelation,
    third_octave_bands,
)
from unicomp.modalities.speech.modality import SPECTROGRAM, SpeechModality, audible_bands

CENTRES = mel_centres(SPECTROGRAM)


def envelopes(frames: int, seed: int = 0) -> torch.Tensor:
    """Mel magnitudes (1, mels, frames) whose bands rise and fall at their own pace."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[None, :]
    rates = rng.uniform(0.05, 0.3, size=(len(CENTRES), 1))
    return torch.from_numpy(1.5 + np.sin(rates * t + rng.uniform(0, 6, rates.shape)))[None].float()


def test_mel_bins_pool_into_stois_third_octave_bands() -> None:
    bands = third_octave_bands(CENTRES)
    assert bands.shape == (BAND_COUNT, len(CENTRES))
    assert bands.sum(dim=0).max() == 1  # no bin in two bands
    pooled = CENTRES[bands.sum(dim=0).numpy() > 0]
    assert 150 <= pooled.min() and pooled.max() < 150 * 2**5
    assert len(third_octave_bands(CENTRES[: audible_bands(8000)])) == BAND_COUNT
    below_1k = CENTRES[CENTRES < 1000]
    assert 0 < len(third_octave_bands(below_1k)) < BAND_COUNT  # empty bands are left out


def test_decorrelation_follows_the_envelopes_shape_not_their_level() -> None:
    bands = third_octave_bands(CENTRES)
    clean = envelopes(200)
    assert float(envelope_decorrelation(clean, clean, bands)) == pytest.approx(0, abs=1e-5)
    louder = clean * 3.0  # a band's gain does not change how it rises and falls
    assert float(envelope_decorrelation(louder, clean, bands)) == pytest.approx(0, abs=1e-5)
    late = torch.roll(clean, shifts=6, dims=-1)  # 48 ms late: onsets smeared
    other = envelopes(200, seed=1)
    assert (
        0.05
        < float(envelope_decorrelation(late, clean, bands))
        < float(envelope_decorrelation(other, clean, bands))
    )


def test_silent_segments_and_short_items_do_not_count() -> None:
    bands = third_octave_bands(CENTRES)
    clean = envelopes(3 * SEGMENT_FRAMES)
    clean[..., SEGMENT_FRAMES:] *= 1e-3  # after the first segment, 60 dB down: a pause
    decoded = clean.clone()
    last_heard = SEGMENT_FRAMES + SEGMENT_FRAMES - 12  # the end of the last loud segment
    decoded[..., last_heard:] = envelopes(3 * SEGMENT_FRAMES, seed=2)[..., last_heard:] * 1e-3
    assert float(envelope_decorrelation(decoded, clean, bands)) == pytest.approx(0, abs=1e-5)
    decoded[..., SEGMENT_FRAMES - 1] *= 2  # within the speech, it counts
    assert float(envelope_decorrelation(decoded, clean, bands)) > 1e-3
    short = envelopes(SEGMENT_FRAMES - 1)
    assert float(envelope_decorrelation(torch.ones_like(short), short, bands)) == 0.0


def test_the_search_adds_the_weighted_decorrelation_to_the_distortion() -> None:
    x = torch.randn(1, len(CENTRES), 120) * 0.3
    x_hat = torch.roll(x, shifts=3, dims=-1)
    plain = SpeechModality(envelope_weight=0.0)
    weighted = SpeechModality(envelope_weight=2.0)
    side_info = {"sr": 16000}
    base = float(plain.search_distortion(side_info)(x_hat, x))
    assert base == pytest.approx(float(plain.distortion(x_hat, x)))
    added = float(weighted.search_distortion(side_info)(x_hat, x)) - base
    assert added > 0.01
    x_hat.requires_grad_(True)
    weighted.search_distortion({"sr": 8000})(x_hat, x).sum().backward()
    assert x_hat.grad is not None and x_hat.grad[:, audible_bands(8000) :].abs().max() == 0

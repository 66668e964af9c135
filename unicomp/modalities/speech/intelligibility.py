"""A differentiable stand-in for STOI, for the latent search to keep speech intelligible.

STOI (Taal et al., 2011) correlates the temporal envelopes of clean and decoded speech
in 15 third-octave bands from 150 Hz, over 384 ms segments, leaving out segments 40 dB
below the loudest. A log-mel L1 weighs each value on its own; two decodes with the same
L1 can differ in whether a band's envelope rises and falls with the speech, which is
what listeners (and STOI) follow. :func:`envelope_decorrelation` measures that on the
model's own mel magnitudes: mel bins pooled into the third-octave bands, segments of
:data:`SEGMENT_FRAMES` frames every :data:`SEGMENT_HOP`, one minus the mean correlation.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

#: 384 ms, STOI's segment, at the 8 ms hop of the speech log-mel.
SEGMENT_FRAMES = 48
SEGMENT_HOP = 12
#: STOI's bands: 15 third octaves, the lowest starting at 150 Hz.
LOWEST_BAND_HZ = 150.0
BAND_COUNT = 15
#: Segments this far under the loudest one hold no speech and are left out.
SILENT_SEGMENT_DB = 40.0


def third_octave_bands(centres_hz: np.ndarray) -> torch.Tensor:
    """(bands, mels) 0/1 matrix pooling the mel bins centred at ``centres_hz`` into
    STOI's third-octave bands; bands holding no bin (above a narrowband file's
    Nyquist frequency) are left out."""
    edges = LOWEST_BAND_HZ * 2.0 ** (np.arange(BAND_COUNT + 1) / 3.0)
    rows = [(centres_hz >= low) & (centres_hz < high) for low, high in itertools.pairwise(edges)]
    matrix = np.array([row for row in rows if row.any()], dtype=np.float32)
    return torch.from_numpy(matrix.reshape(-1, len(centres_hz)))


def envelope_decorrelation(
    magnitude_hat: torch.Tensor, magnitude: torch.Tensor, bands: torch.Tensor
) -> torch.Tensor:
    """Per item, one minus the mean correlation of the band envelopes of
    ``magnitude_hat`` and ``magnitude`` (batch, mels, frames) over the speech segments;
    0 for items shorter than a segment."""
    envelope_hat = torch.einsum("bm,nmt->nbt", bands, magnitude_hat)
    envelope = torch.einsum("bm,nmt->nbt", bands, magnitude)
    if envelope.shape[-1] < SEGMENT_FRAMES:
        return envelope.new_zeros(envelope.shape[0])
    segments_hat = envelope_hat.unfold(-1, SEGMENT_FRAMES, SEGMENT_HOP)
    segments = envelope.unfold(-1, SEGMENT_FRAMES, SEGMENT_HOP)  # (batch, bands, segs, frames)
    energy = segments.square().sum(dim=(1, 3))
    floor = energy.amax(dim=-1, keepdim=True) * 10.0 ** (-SILENT_SEGMENT_DB / 10.0)
    speech = (energy > floor).to(energy.dtype)
    centred_hat = segments_hat - segments_hat.mean(dim=-1, keepdim=True)
    centred = segments - segments.mean(dim=-1, keepdim=True)
    products = (centred_hat * centred).sum(dim=-1)
    norms = centred_hat.norm(dim=-1) * centred.norm(dim=-1)
    correlation = (products / (norms + 1e-8)).mean(dim=1)  # (batch, segs)
    return ((1.0 - correlation) * speech).sum(dim=-1) / speech.sum(dim=-1).clamp(min=1.0)

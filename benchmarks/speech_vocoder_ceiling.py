"""Magnitude-only ceiling of the speech codec: how good can a perfect (unquantized) log-mel sound?

Runs the decoder's signal-processing chain on the *true* 128-band log-mel of a speech file,

    waveform -> log-mel -> NNLS -> PGHI (-> fast Griffin-Lim) -> waveform,

and scores the result against the original with PESQ-WB and STOI, next to Griffin-Lim alone
(64 iterations from random phase) and PGHI on the exact STFT magnitude. It also times every
step on 10 s of audio. Whatever a trained codec reaches, it cannot beat these numbers.

    .venv/bin/python benchmarks/speech_vocoder_ceiling.py speech_orig_16k.wav

(speech_orig_16k.wav ships in Debian's ``codec2-examples``: usr/share/codec2/raw/.)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from unicomp.modalities.speech import dsp


def load_wav(path: Path, sample_rate: int) -> np.ndarray:
    """Mono float64 samples in [-1, 1] at ``sample_rate`` (resampled if needed)."""
    import soundfile as sf

    data, sr = sf.read(str(path), dtype="float64", always_2d=True)
    mono = data.mean(axis=1)
    if sr != sample_rate:
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(int(sr), sample_rate)
        mono = resample_poly(mono, sample_rate // g, int(sr) // g)
    return mono


def scores(ref: np.ndarray, out: torch.Tensor, sr: int) -> tuple[float, float]:
    from pesq import pesq
    from pystoi import stoi

    deg = out.detach().cpu().double().numpy()
    return float(pesq(sr, ref, deg, "wb")), float(stoi(ref, deg, sr, extended=False))


def timed(fn: Callable[[], object], repeats: int) -> tuple[object, float]:
    """Result of ``fn`` and its median wall time in ms over ``repeats`` runs (after a warm-up)."""
    result = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return result, statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("wav", type=Path, help="speech file (resampled to 16 kHz if needed)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--repeats", type=int, default=5, help="timing repeats (median)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    cfg = dsp.SpectrogramConfig()
    sr = cfg.sample_rate
    ref = load_wav(args.wav, sr)
    wave = torch.from_numpy(ref).float()
    n = len(ref)
    print(
        f"{args.wav.name}: {n / sr:.2f} s at {sr} Hz; n_fft {cfg.n_fft}, hop {cfg.hop}, "
        f"{cfg.n_mels} mels, Gaussian gamma = {cfg.gamma_factor} * n_fft^2; "
        f"torch threads {torch.get_num_threads()}"
    )

    logmel = dsp.waveform_to_logmel(wave, cfg)
    mel = dsp.logmel_to_mel(logmel)
    mag_true = dsp.stft(wave, cfg).abs()
    mag = dsp.mel_to_magnitude(mel, cfg)
    phase = torch.from_numpy(dsp.pghi(mag, cfg)).float()

    rows: list[tuple[str, torch.Tensor, torch.Tensor]] = []
    rows.append(
        ("exact |STFT| -> PGHI", dsp.magnitude_to_waveform(mag_true, cfg, n, gl_iters=0), mag_true)
    )
    rows.append(("mel -> NNLS -> PGHI", dsp.istft(torch.polar(mag, phase), cfg, n), mag))
    for k in (4, 8, 16, 32):
        tag = " (default)" if k == dsp.DEFAULT_GL_ITERS else ""
        rows.append(
            (
                f"mel -> NNLS -> PGHI + {k} FGLA{tag}",
                dsp.griffin_lim(mag, cfg, k, init_phase=phase, length=n),
                mag,
            )
        )
    rows.append(
        (
            "mel -> NNLS -> GL x64 (random phase)",
            dsp.griffin_lim(mag, cfg, 64, momentum=0.0, length=n),
            mag,
        )
    )
    rows.append(
        (
            "mel -> NNLS -> fast GL x64 (random phase)",
            dsp.griffin_lim(mag, cfg, 64, momentum=0.99, length=n),
            mag,
        )
    )

    print(f"\n{'pipeline':45s} {'PESQ-WB':>8s} {'STOI':>7s} {'SC':>7s}")
    for name, out, target in rows:
        p, s = scores(ref, out, sr)
        sc = dsp.spectral_convergence(target, out, cfg)
        print(f"{name:45s} {p:8.3f} {s:7.4f} {sc:7.4f}")
    err = torch.linalg.norm(dsp.mel_filterbank(cfg) @ mag - mel) / torch.linalg.norm(mel)
    print(f"NNLS relative mel residual: {float(err):.1e}; min magnitude {float(mag.min()):.1e}")

    # Timings on exactly 10 s (tiled if the file is shorter).
    ten = torch.from_numpy(np.resize(ref, 10 * sr)).float()
    lm10 = dsp.waveform_to_logmel(ten, cfg)
    mag10 = dsp.mel_to_magnitude(dsp.logmel_to_mel(lm10), cfg)
    ph10 = torch.from_numpy(dsp.pghi(mag10, cfg)).float()
    steps: list[tuple[str, Callable[[], object]]] = [
        ("waveform -> log-mel (STFT + mel + log)", lambda: dsp.waveform_to_logmel(ten, cfg)),
        (
            f"NNLS ({dsp.DEFAULT_NNLS_ITERS} FISTA iterations)",
            lambda: dsp.mel_to_magnitude(dsp.logmel_to_mel(lm10), cfg),
        ),
        ("PGHI (numba heap walk + gradients)", lambda: dsp.pghi(mag10, cfg)),
        ("ISTFT", lambda: dsp.istft(torch.polar(mag10, ph10), cfg, 10 * sr)),
        (
            f"{dsp.DEFAULT_GL_ITERS} FGLA iterations from PGHI",
            lambda: dsp.griffin_lim(mag10, cfg, dsp.DEFAULT_GL_ITERS, init_phase=ph10),
        ),
        (
            "mel_to_waveform total (default settings)",
            lambda: dsp.mel_to_waveform(lm10, cfg, 10 * sr),
        ),
        ("GL x64 alone", lambda: dsp.griffin_lim(mag10, cfg, 64, momentum=0.0)),
    ]
    print(f"\ntimings on 10 s of audio (median of {args.repeats}):")
    for name, fn in steps:
        _, ms = timed(fn, args.repeats)
        print(f"  {name:45s} {ms:8.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

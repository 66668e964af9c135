"""Speech as a unicomp modality: audio files ↔ level-normalised 16 kHz log-mel spectrograms.

Any WAV/FLAC/OGG file is mixed to mono and resampled to the model's 16 kHz; its loudness
is taken out (and sent as side info, quantised to 0.05 dB) so the networks only see the
spectral shape, and sample rate, length, channel count and sample format travel in the
header so that the decoded file looks like the input. Synthesis widens the generated
log-mel a little over time (the post-filter its file asks for, side info ``pf``) and
inverts it without phase (NNLS → PGHI → fast Griffin-Lim, see ``dsp``).
"""

from __future__ import annotations

import io
import itertools
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr
import torch

from unicomp.core.config import AdmmConfig, ModelConfig, QuantizerConfig, TrainConfig
from unicomp.errors import FormatError, InputError, UsageError
from unicomp.modalities.base import Distortion, Networks, SideInfo
from unicomp.modalities.speech import dsp
from unicomp.modalities.speech.intelligibility import envelope_decorrelation, third_octave_bands
from unicomp.modalities.speech.networks import DEFAULT_NETWORK, build_speech_networks, stack_spec

SAMPLE_RATE = 16000
SPECTROGRAM = dsp.SpectrogramConfig(sample_rate=SAMPLE_RATE)
#: Longest accepted input (one hour) and the sample rates a file may declare.
MAX_SECONDS = 3600.0
MIN_RATE, MAX_RATE = 1000, 384000
MAX_CHANNELS = 64
#: RMS every utterance is scaled to before analysis (-26 dBFS, the ITU speech level).
TARGET_RMS = 0.05
#: Side-info gain unit: 1/20 dB, so it fits a 2-byte varint and is inaudibly exact.
GAIN_STEPS_PER_DB = 20
#: Affine map of the log-mel into roughly [-1, 1] for the networks (measured on train).
LOGMEL_CENTER = -7.0
LOGMEL_SCALE = 2.5
#: The distortion counts no log-mel error below this many dB under the signal's loudest
#: value, where a listener hears nothing of it: an L1 in the log domain would weigh a
#: 1 dB error in near-silence like one in a vowel, and two thirds of a speech clip's
#: values lie that far down. In the latent search (speech-v1, 16 wideband 10 s train
#: clips, rates as coded; benchmarks/audible_range.py) a floor 50 dB down gained PESQ-WB
#: +0.13 / +0.07, PESQ-NB +0.13 / +0.06 and STOI +0.007 / +0.002 at 1 / 2 kbit/s, 60 dB
#: down +0.08 / +0.03 in PESQ-WB (benchmarks/README.md, "Speech: errors only within the
#: audible range").
AUDIBLE_RANGE_DB = 50.0
#: Weight of the band envelopes' decorrelation (intelligibility.py, a stand-in for STOI)
#: beside that L1 in the latent search's distortion: the L1 alone left STOI 0.026 under
#: Opus 8 kbit/s (issue 18). On 12 train clips (benchmarks/speech_tuning.py, speech-v2,
#: post-filter 10 %), 0.25 gained STOI +0.025 / +0.035 at 2 / 1 kbit/s for PESQ-WB
#: +0.04 / -0.01, and +0.020 for -0.01 at 2 kbit/s with the clips at 8 kHz; 0.5 gained
#: as much STOI for less PESQ-WB (-0.03 at 8 kHz), 1 and 2 no more STOI for still less.
#: Training keeps the L1 alone.
SEARCH_ENVELOPE_WEIGHT = 0.25
#: Decoder post-filter: every mel band's log values move ``1 + POSTFILTER_PERCENT / 100``
#: times as far from the band's mean over the utterance. A generator trained on a mean
#: error is over-smooth (its output varies less over time than speech does), and
#: restoring part of that variance is the classic global-variance post-filter of
#: statistical speech synthesis. On 12 wideband train clips (benchmarks/speech_tuning.py,
#: speech-v2), 10 % gained PESQ-WB +0.17 / +0.11 and PESQ-NB +0.17 / +0.14 at 2 / 1
#: kbit/s, STOI within 0.001; 5 to 20 % gained alike. Files carry the figure as side
#: info ``pf`` (5 bytes), so that files written before it decode as they did.
POSTFILTER_PERCENT = 10
MAX_POSTFILTER_PERCENT = 100
#: Vocoder budget. On the exact log-mel of 10 s train clips (PESQ-WB / seconds per 10 s,
#: busy machine): dsp defaults (50 NNLS, 16 GL, tol 1e-5) 4.27 / 2.7 s; 20, 8, 1e-5
#: 4.23 / 1.05 s; 10, 4, 1e-3 4.17 / 0.63 s; 20, 0, 1e-3 4.05 / 0.60 s. The generated
#: mel, not the vocoder, limits quality. Decoding is to run at 50x real time: speech-v1
#: decodes a 10 s train clip at 57-62x on a free core (benchmarks/speed.py), of which
#: this vocoder takes ~0.14 s (NNLS 0.025 through the filterbank's nonzero entries, PGHI
#: 0.05, Griffin-Lim 0.07) and the generator 0.03; with dense products it was 42-49x.
#: Changing them changes every file's decoded samples (docs/format.md).
NNLS_ITERS = 10
GL_ITERS = 4
PGHI_TOL = 1e-3
#: Long signals are analysed and vocoded in chunks of this many frames (20 s); vocoder
#: chunks meet at the quietest frame of the last SEARCH_FRAMES before the nominal border
#: and cross-fade over 2 * FADE_FRAMES there, each vocoded EDGE_FRAMES further still.
CHUNK_FRAMES = 2500
SEARCH_FRAMES = 250
FADE_FRAMES = 8
EDGE_FRAMES = 4
#: Sample rate from which a file is wideband (up to 8 kHz audio); below, an 8 kHz telephone
#: recording holds nothing above 4 kHz, and the bench reports such clips apart.
WIDEBAND_RATE = 16000
#: The sample format a file leaves unstated (no "st"): :meth:`SpeechModality.save` writes
#: it anyway where a format has no other stated, 16-bit PCM in .wav and .flac, and .ogg
#: holds Vorbis either way. Not stating it saves 11 of the 248 bytes of a 1 s file at
#: 2 kbit/s; a mono file leaves its channel count ("ch") unstated too, 5 bytes more.
UNSTATED_SUBTYPE = "PCM_16"
#: The bundled model that codes new files at every rate (entropy-constrained projection):
#: speech-v1 fine-tuned (benchmarks/speech-v2.toml). speech-v1 stays bundled for its files.
DEFAULT_MODEL = "speech-v2"
DEFAULT_RATE = "2kbps"


@dataclass(frozen=True)
class SpeechSignal:
    """Audio samples ``(frames, channels)`` in [-1, 1] and how they were stored."""

    samples: np.ndarray
    sample_rate: int
    subtype: str = ""

    @property
    def duration(self) -> float:
        return self.samples.shape[0] / self.sample_rate

    def mono(self, sample_rate: int | None = None) -> np.ndarray:
        """The channel mix (float32: an hour at 44.1 kHz is 635 MB), resampled if asked."""
        mixed = self.samples.mean(axis=1, dtype=np.float32)
        if sample_rate is None or sample_rate == self.sample_rate:
            return mixed
        return resample(mixed, self.sample_rate, sample_rate)


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """High-quality polyphase resampling (soxr), a no-op at equal rates."""
    if rate_in == rate_out:
        return samples
    return soxr.resample(samples, rate_in, rate_out, quality="HQ")


class SpeechModality:
    """Speech files coded through a 1-D convolutional GAN on log-mel spectrograms."""

    name = "speech"
    extensions: tuple[str, ...] = (".wav", ".flac", ".ogg")
    rate_unit = "kbps"
    size_unit = "s"

    def __init__(
        self,
        audible_range_db: float | None = AUDIBLE_RANGE_DB,
        envelope_weight: float = SEARCH_ENVELOPE_WEIGHT,
    ) -> None:
        """``audible_range_db``: how far under each signal's loudest value the
        distortion counts errors (None: everywhere, as models before 2026-12-02 did).
        ``envelope_weight``: how much the latent search also weighs the band envelopes'
        decorrelation (0: the distortion alone)."""
        self.audible_range_db = audible_range_db
        self.envelope_weight = envelope_weight

    def default_config(self) -> ModelConfig:
        return ModelConfig(
            name=DEFAULT_MODEL,
            modality=self.name,
            network=dict(DEFAULT_NETWORK),
            rates=["2kbps", "1kbps"],
            quantizer=QuantizerConfig(num_centers=16),
            # On six 10 s train clips at 2 kbit/s (benchmarks/tune_admm.py --modality
            # speech), over the encoder's output: 20 straight-through steps
            # (core/search.py) of 0.008 rms gained PESQ-WB +0.10 and STOI +0.012, of
            # 0.02 +0.11 and +0.010, of 0.05 +0.08 and +0.008, of 0.3 nothing; ADMM (10
            # x 2 steps of 0.1, rho 0.2) +0.016 and +0.005. Steps annealed from 0.05 to
            # 0.001 (core/config.py), on the same six clips, against 0.008: distortion
            # -2.0 % at 2 kbit/s and -2.7 % at 1 (PESQ-WB +0.02 and +0.09, STOI +0.002
            # and +0.008); 0.03 or 0.08 to 0.001 and 0.05 to 0.003 did about as well.
            # With the audible-range distortion, 40 steps instead of 20 (the same anneal)
            # gained PESQ-WB +0.09 / +0.03 and STOI +0.001 / +0.003 at 1 / 2 kbit/s on 10
            # train clips (tune_admm.py), for twice the encode time (0.40 s per second of
            # audio on the evaluate split). 60 or 80 steps gained nothing more with the
            # envelope term (speech-v2, 10 train clips at 2 kbit/s, tune_admm.py): search
            # distortion 0.0509 and 0.0515 against 0.0506, PESQ-WB 3.08 and 3.10 against
            # 3.10, STOI 0.933 against 0.935. --effort best: up to 2 s per second of audio.
            admm=AdmmConfig(
                iterations=40, learning_rate=0.05, final_learning_rate=0.001, best_seconds=2.0
            ),
            train=TrainConfig(
                float_steps=1500,
                soft_steps=1500,
                hard_steps=17000,
                batch_size=16,
                crop=[128],
                learning_rate=3e-4,
                adversarial_weight=0.1,
                feature_matching_weight=1.0,
                adversarial_start=3000,
                checkpoint_every=200,
                log_every=20,
            ),
        )

    def default_model(self, rate: str | None) -> str:
        """One model serves every rate between its operating points (the codec checks
        that ``rate`` lies there)."""
        return DEFAULT_MODEL

    # -- files ------------------------------------------------------------------------

    def load(self, path: Path) -> SpeechSignal:
        try:
            info = sf.info(str(path))
        except (sf.LibsndfileError, RuntimeError, TypeError) as error:
            raise InputError(f"cannot read {path} as audio: {_first_line(error)}") from None
        if not MIN_RATE <= info.samplerate <= MAX_RATE:
            raise InputError(f"{path} has an unsupported sample rate of {info.samplerate} Hz")
        if not 1 <= info.channels <= MAX_CHANNELS:
            raise InputError(f"{path} has {info.channels} channels (1..{MAX_CHANNELS} allowed)")
        if info.frames > MAX_SECONDS * info.samplerate:
            raise InputError(f"{path} lasts {info.duration:.0f} s; at most {MAX_SECONDS:.0f} s")
        try:
            samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as error:
            raise InputError(f"cannot decode {path}: {_first_line(error)}") from None
        if samples.shape[0] == 0:
            raise InputError(f"{path} holds no audio samples")
        if not np.isfinite(samples).all():
            raise InputError(f"{path} contains NaN or infinite samples")
        return SpeechSignal(samples, int(rate), info.subtype or "")

    def save(self, signal: SpeechSignal, path: Path) -> None:
        file_format = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}.get(path.suffix.lower())
        if file_format is None:
            raise InputError(f"cannot write {path.suffix or 'extension-less'} audio files")
        subtype = signal.subtype if signal.subtype else None
        if subtype is not None and not sf.check_format(file_format, subtype):
            subtype = None
        samples = signal.samples
        if (subtype or sf.default_subtype(file_format)) not in ("FLOAT", "DOUBLE"):
            samples = np.clip(samples, -1.0, 1.0)
        # Encoded in memory first: libsndfile reports a full disk without its errno, a
        # plain file write raises the OSError that says why.
        encoded = io.BytesIO()
        sf.write(encoded, samples, signal.sample_rate, subtype=subtype, format=file_format)
        path.write_bytes(encoded.getbuffer())

    # -- model space ------------------------------------------------------------------

    def analysis(self, signal: SpeechSignal) -> tuple[torch.Tensor, dict[str, int | float | str]]:
        # Resampling a single sample from above 32 kHz leaves none; keep what synthesis makes.
        wave = _fit_length(
            signal.mono(SAMPLE_RATE), _length_16k(signal.samples.shape[0], signal.sample_rate)
        )
        rms = math.sqrt(float(np.mean(np.square(wave), dtype=np.float64)))
        gain_steps = round(GAIN_STEPS_PER_DB * 20 * math.log10(max(rms, 1e-6)))
        scale = TARGET_RMS / _gain(gain_steps)
        frames = SPECTROGRAM.n_frames(len(wave))
        padded_frames = -(-frames // _TIME_MULTIPLE) * _TIME_MULTIPLE
        padded = np.zeros(max(len(wave), (padded_frames - 1) * SPECTROGRAM.hop), np.float32)
        padded[: len(wave)] = wave * scale
        x = (_logmel(padded) - LOGMEL_CENTER) / LOGMEL_SCALE
        side_info: dict[str, int | float | str] = {
            "sr": signal.sample_rate,
            "n": signal.samples.shape[0],
            "g": gain_steps,
            "pf": POSTFILTER_PERCENT,
        }
        if signal.samples.shape[1] != 1:
            side_info["ch"] = signal.samples.shape[1]
        if signal.subtype and signal.subtype != UNSTATED_SUBTYPE:
            side_info["st"] = signal.subtype
        return x, side_info

    def synthesis(self, x: torch.Tensor, side_info: Mapping[str, Any]) -> SpeechSignal:
        rate = _side_int(side_info, "sr", "sample rate", MIN_RATE, MAX_RATE)
        length = _side_int(side_info, "n", "length", 1, MAX_SECONDS * MAX_RATE)
        channels = _side_int(side_info, "ch", "channel count", 1, MAX_CHANNELS, absent=1)
        gain_steps = _side_int(
            side_info, "g", "gain", -400 * GAIN_STEPS_PER_DB, 100 * GAIN_STEPS_PER_DB
        )
        postfilter = _side_int(side_info, "pf", "post-filter", 0, MAX_POSTFILTER_PERCENT, absent=0)
        subtype = side_info.get("st", "")
        if not isinstance(subtype, str):
            raise FormatError(f"side info sample format {subtype!r} is not a string")
        length_16k = _length_16k(length, rate)
        frames = SPECTROGRAM.n_frames(length_16k)
        if frames > x.shape[-1]:
            raise FormatError(f"side info length {length} exceeds the decoded {x.shape[-1]} frames")
        logmel = x.detach().float() * LOGMEL_SCALE + LOGMEL_CENTER
        if postfilter:
            logmel = expand_deviations(logmel, frames, 1 + postfilter / 100)
        wave = _vocode(logmel)[:length_16k]
        wave = resample(wave * (_gain(gain_steps) / TARGET_RMS), SAMPLE_RATE, rate)
        wave = _fit_length(wave, length)
        samples = np.repeat(wave[:, None], channels, axis=1).astype(np.float32)
        return SpeechSignal(samples, rate, subtype)

    def build_networks(self, network: Mapping[str, Any]) -> Networks:
        if stack_spec(network).total_stride != _TIME_MULTIPLE:
            raise UsageError(f"speech networks must downsample time by {_TIME_MULTIPLE}")
        if int(network["n_mels"]) != SPECTROGRAM.n_mels:
            raise UsageError(f"speech networks must take {SPECTROGRAM.n_mels} mel bands")
        return build_speech_networks(network)

    def distortion(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Mean absolute log-mel error over the audible range: both spectrograms are
        raised to a floor ``audible_range_db`` under the item's loudest value, so a
        fixed dB-like error counts alike everywhere above it and not at all below."""
        if self.audible_range_db is not None:
            floor = audible_floor(x, self.audible_range_db)
            x_hat, x = torch.maximum(x_hat, floor), torch.maximum(x, floor)
        return (x_hat - x).abs().flatten(1).mean(dim=1)

    def search_distortion(self, side_info: SideInfo) -> Distortion:
        """:meth:`distortion` plus ``envelope_weight`` times the band envelopes'
        decorrelation, over the mel bands centred below the file's own Nyquist
        frequency: decoding resamples to the file's rate, which drops everything above
        it, so an error there would cost bits and change nothing a listener hears."""
        bands = audible_bands(_side_int(side_info, "sr", "sample rate", MIN_RATE, MAX_RATE))
        pooling = third_octave_bands(dsp.mel_centres(SPECTROGRAM)[:bands])

        def searched(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            x_hat, x = x_hat[:, :bands], x[:, :bands]
            distortion = self.distortion(x_hat, x)
            if not self.envelope_weight:
                return distortion
            envelopes = envelope_decorrelation(_magnitude(x_hat), _magnitude(x), pooling)
            return distortion + self.envelope_weight * envelopes

        return searched

    def metrics(self, reference: SpeechSignal, decoded: SpeechSignal) -> dict[str, float]:
        return speech_metrics(reference, decoded)

    def rate(self, bits: int, signal: SpeechSignal) -> float:
        return bits / signal.duration / 1000.0

    def size(self, signal: SpeechSignal) -> float:
        """Seconds of audio: per them, coding speed reads as a real-time factor."""
        return signal.duration

    def bench_group(self, signal: SpeechSignal) -> str:
        """Wideband or narrowband, by the file's own rate: a narrowband clip has no
        content above 4 kHz to lose, so its scores would flatter a mean over both."""
        return "wideband" if signal.sample_rate >= WIDEBAND_RATE else "narrowband"


def audible_floor(x: torch.Tensor, range_db: float) -> torch.Tensor:
    """Per item of the batch ``x`` (model units), the log-mel value ``range_db`` under its
    loudest, shaped to broadcast against ``x``: below it, :meth:`SpeechModality.distortion`
    counts no error."""
    depth = math.log(10.0 ** (range_db / 20.0)) / LOGMEL_SCALE
    return x.amax(dim=tuple(range(1, x.dim())), keepdim=True) - depth


def audible_bands(sample_rate: int) -> int:
    """How many of the model's mel bands a file at ``sample_rate`` holds: those centred
    below its Nyquist frequency (all 128 from 16 kHz up, 100 at 8 kHz)."""
    centres = dsp.mel_centres(SPECTROGRAM)
    return max(1, int(np.count_nonzero(centres < sample_rate / 2)))


def speech_metrics(reference: SpeechSignal, decoded: SpeechSignal) -> dict[str, float]:
    """PESQ wideband (16 kHz), PESQ narrowband (8 kHz) and STOI of the mono mixes.

    STOI runs at the reference's own rate (pystoi resamples internally); PESQ needs 16
    or 8 kHz, so both signals are resampled for it. PESQ is NaN when it finds no speech.
    """
    from pesq import PesqError, pesq
    from pystoi import stoi

    scores: dict[str, float] = {}
    for label, rate, mode in (("pesq_wb", 16000, "wb"), ("pesq_nb", 8000, "nb")):
        ref, deg = reference.mono(rate), decoded.mono(rate)
        count = min(len(ref), len(deg))
        try:
            scores[label] = float(pesq(rate, ref[:count], deg[:count], mode))
        except PesqError:
            scores[label] = math.nan
    ref, deg = reference.mono(), decoded.mono(reference.sample_rate)
    count = min(len(ref), len(deg))
    with warnings.catch_warnings():  # pystoi warns on very short or silent signals
        warnings.simplefilter("ignore")
        scores["stoi"] = float(stoi(ref[:count], deg[:count], reference.sample_rate))
    return scores


#: The default networks shorten time by 4; analysis pads the frame count to a multiple.
_TIME_MULTIPLE = 4


def _logmel(wave: np.ndarray) -> torch.Tensor:
    """``dsp.waveform_to_logmel`` of a waveform of any length, in bounded memory.

    Frames are computed ``CHUNK_FRAMES`` at a time from the samples they see (half a
    window either side), which gives exactly the frames of a single pass.
    """
    hop, half = SPECTROGRAM.hop, SPECTROGRAM.n_fft // 2
    frames = SPECTROGRAM.n_frames(len(wave))
    padded = np.pad(wave, (half, half))
    skip = half // hop
    parts = []
    for start in range(0, frames, CHUNK_FRAMES):
        stop = min(start + CHUNK_FRAMES, frames)
        segment = torch.from_numpy(padded[start * hop : (stop - 1) * hop + 2 * half + 1])
        parts.append(dsp.waveform_to_logmel(segment, SPECTROGRAM)[:, skip : skip + stop - start])
    return torch.cat(parts, dim=1)


def expand_deviations(logmel: torch.Tensor, frames: int, factor: float) -> torch.Tensor:
    """``logmel`` (bands, T) with each band ``factor`` times as far from its mean over
    the first ``frames`` frames (the utterance's; the rest pad it)."""
    mean = logmel[:, :frames].mean(dim=1, keepdim=True)
    return mean + factor * (logmel - mean)


def _magnitude(x: torch.Tensor) -> torch.Tensor:
    """Mel magnitudes of a log-mel in model units."""
    return dsp.logmel_to_mel(x * LOGMEL_SCALE + LOGMEL_CENTER)


def _vocode(logmel: torch.Tensor) -> np.ndarray:
    """Waveform of ``T * hop`` samples from a log-mel of any length, in bounded memory.

    Long inputs are vocoded in chunks. Each border is moved to the quietest frame near
    its nominal place, and neighbouring chunks, vocoded a little past it, are cross-faded
    there: PGHI's phases of two chunks differ, but in a pause nobody hears it.
    """
    frames = logmel.shape[-1]
    borders = [0]
    while frames - borders[-1] > CHUNK_FRAMES:
        nominal = borders[-1] + CHUNK_FRAMES - FADE_FRAMES
        window = logmel[:, nominal - SEARCH_FRAMES : nominal].mean(dim=0)
        borders.append(nominal - SEARCH_FRAMES + int(window.argmin()))
    borders.append(frames)
    hop, margin = SPECTROGRAM.hop, FADE_FRAMES + EDGE_FRAMES
    wave = np.zeros(frames * hop, np.float32)
    for index, (start, stop) in enumerate(itertools.pairwise(borders)):
        first = max(start - margin, 0)
        last = min(stop + margin, frames)
        piece = dsp.mel_to_waveform(
            logmel[:, first:last],
            SPECTROGRAM,
            length=(last - first) * hop if stop == frames else None,
            nnls_iters=NNLS_ITERS,
            gl_iters=GL_ITERS,
            tol=PGHI_TOL,
        ).numpy()
        weight = np.ones(len(piece), np.float32)
        fade = np.sin(np.linspace(0, np.pi / 2, 2 * FADE_FRAMES * hop, dtype=np.float32)) ** 2
        if index > 0:
            begin = (start - FADE_FRAMES - first) * hop
            weight[:begin] = 0
            weight[begin : begin + len(fade)] = fade
        if stop < frames:
            end = (stop - FADE_FRAMES - first) * hop
            weight[end : end + len(fade)] = fade[::-1]
            weight[end + len(fade) :] = 0
        wave[first * hop : first * hop + len(piece)] += weight * piece
    return wave


def _side_int(
    side_info: Mapping[str, Any],
    key: str,
    what: str,
    low: float,
    high: float,
    absent: int | None = None,
) -> int:
    """An integer a header's side info must hold, in [low, high]: decoding sizes its
    buffers by it, so a crafted header must not name anything outside. ``absent``: what
    a file that leaves the key out means (None: it may not)."""
    if key not in side_info and absent is not None:
        return absent
    value = side_info.get(key)
    if not isinstance(value, int) or not low <= value <= high:
        raise FormatError(f"side info {what} {value!r} is missing or out of range")
    return value


def _gain(steps: int) -> float:
    return 10.0 ** (steps / (20.0 * GAIN_STEPS_PER_DB))


def _length_16k(length: int, rate: int) -> int:
    """Samples at the model's rate of ``length`` samples at ``rate``: at least one."""
    return max(1, round(length * SAMPLE_RATE / rate))


def _fit_length(wave: np.ndarray, length: int) -> np.ndarray:
    return np.pad(wave[:length], (0, max(0, length - len(wave))))


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__

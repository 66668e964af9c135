"""The speech modality: audio files in every supported layout survive the codec's round trip.

Shape and format behaviour is checked on the exact log-mel (no model); coding is checked
with a tiny model trained here for a few dozen steps on synthetic voiced tones.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.conftest import run_cli
from unicomp.api import load_codec
from unicomp.core.checkpoint import load_model
from unicomp.core.codec import Codec
from unicomp.core.config import merge
from unicomp.core.trainer import train
from unicomp.errors import FormatError, InputError
from unicomp.modalities.base import bench_group
from unicomp.modalities.speech import modality as modality_module
from unicomp.modalities.speech.dsp import mel_centres
from unicomp.modalities.speech.modality import (
    AUDIBLE_RANGE_DB,
    DEFAULT_MODEL,
    LOGMEL_SCALE,
    POSTFILTER_PERCENT,
    SPECTROGRAM,
    SpeechModality,
    SpeechSignal,
    audible_bands,
    expand_deviations,
)
from unicomp.modalities.speech.networks import DEFAULT_NETWORK, TILE_FRAMES
from unicomp.plugins.baselines.mel_ceiling import MelCeiling

SPEECH = SpeechModality()


def voiced(rate: int, seconds: float, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A vowel-like harmonic tone with a gliding pitch and a syllable envelope."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    pitch = rng.uniform(100, 220) * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    wave = sum(np.sin(k * phase) / k for k in range(1, 12) if k * pitch.max() < rate / 2)
    wave = wave * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) * 0.1
    return np.repeat(wave[:, None], channels, axis=1).astype(np.float32)


def write(path: Path, samples: np.ndarray, rate: int, subtype: str | None = None) -> Path:
    sf.write(str(path), samples, rate, subtype=subtype)
    return path


def exact_round_trip(signal: SpeechSignal) -> SpeechSignal:
    """Analysis then synthesis of the unquantised log-mel: the codec without a model."""
    x, side_info = SPEECH.analysis(signal)
    return SPEECH.synthesis(x, side_info)


def mel_error(a: SpeechSignal, b: SpeechSignal) -> float:
    return float(SPEECH.distortion(SPEECH.analysis(a)[0][None], SPEECH.analysis(b)[0][None]))


@pytest.mark.parametrize(
    ("suffix", "subtype"),
    [
        (".wav", "PCM_U8"),
        (".wav", "PCM_16"),
        (".wav", "PCM_24"),
        (".wav", "FLOAT"),
        (".flac", "PCM_16"),
        (".ogg", "VORBIS"),
    ],
)
def test_every_file_format_comes_back_in_its_own_format(
    tmp_path: Path, suffix: str, subtype: str
) -> None:
    source = write(tmp_path / f"in{suffix}", voiced(16000, 0.5), 16000, subtype)
    signal = SPEECH.load(source)
    SPEECH.save(exact_round_trip(signal), tmp_path / f"out{suffix}")
    info = sf.info(str(tmp_path / f"out{suffix}"))
    assert (info.samplerate, info.frames, info.subtype) == (16000, signal.samples.shape[0], subtype)


@pytest.mark.parametrize(
    ("channels", "subtype", "stated"),
    [(1, "PCM_16", set()), (1, "PCM_24", {"st"}), (2, "PCM_16", {"ch"})],
)
def test_files_state_channels_and_sample_format_only_when_not_mono_16_bit_pcm(
    tmp_path: Path, channels: int, subtype: str, stated: set[str]
) -> None:
    samples = voiced(16000, 0.1, channels)
    signal = SPEECH.load(write(tmp_path / "in.wav", samples, 16000, subtype))
    assert {"ch", "st"} & set(SPEECH.analysis(signal)[1]) == stated


@pytest.mark.parametrize("rate", [8000, 16000, 44100])
@pytest.mark.parametrize("channels", [1, 2])
def test_rate_channels_and_length_are_restored_to_the_sample(
    tmp_path: Path, rate: int, channels: int
) -> None:
    samples = voiced(rate, 0.613, channels)
    signal = SPEECH.load(write(tmp_path / "in.wav", samples, rate))
    decoded = exact_round_trip(signal)
    assert decoded.sample_rate == rate
    assert decoded.samples.shape == samples.shape
    assert mel_error(signal, decoded) < 0.15  # measured 0.088 (16k, 44.1k), 0.108 (8k)


def test_loudness_is_side_info_not_lost(tmp_path: Path) -> None:
    quiet = SPEECH.load(write(tmp_path / "quiet.wav", voiced(16000, 0.5) * 0.05, 16000))
    decoded = exact_round_trip(quiet)
    rms = [math.sqrt(float(np.mean(s.samples**2))) for s in (quiet, decoded)]
    assert abs(20 * math.log10(rms[1] / rms[0])) < 1.0


def test_level_does_not_change_the_model_space_tensor() -> None:
    signal = SpeechSignal(voiced(16000, 0.5), 16000)
    louder = SpeechSignal(signal.samples * 8, 16000)
    x, info = SPEECH.analysis(signal)
    x_loud, info_loud = SPEECH.analysis(louder)
    assert torch.allclose(x, x_loud, atol=0.01)
    assert info_loud["g"] - info["g"] == round(20 * 20 * math.log10(8))


def test_time_axis_is_padded_to_the_network_multiple() -> None:
    for seconds in (0.01, 0.5, 1.234):
        x, _ = SPEECH.analysis(SpeechSignal(voiced(16000, seconds), 16000))
        assert x.shape[0] == 128 and x.shape[1] % 4 == 0


@pytest.mark.parametrize("content", [b"", b"RIFF\x00\x00\x00\x00WAVEjunk", b"not audio at all"])
def test_unreadable_files_are_input_errors(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(InputError, match="bad.wav"):
        SPEECH.load(path)


def test_a_file_without_samples_is_an_input_error(tmp_path: Path) -> None:
    path = write(tmp_path / "empty.wav", np.zeros((0, 1), np.float32), 16000)
    with pytest.raises(InputError, match="no audio samples"):
        SPEECH.load(path)


def test_missing_or_absurd_side_info_is_a_format_error() -> None:
    x, side_info = SPEECH.analysis(SpeechSignal(voiced(16000, 0.5), 16000))
    broken_infos = [{**side_info, "sr": 0}, {**side_info, "n": 10**7}, {"sr": 16000}]
    broken_infos += [{**side_info, "pf": -1}, {**side_info, "pf": 101}, {**side_info, "pf": 0.5}]
    for broken in broken_infos:
        with pytest.raises(FormatError):
            SPEECH.synthesis(x, broken)


def test_new_files_ask_for_the_post_filter_and_older_ones_decode_without_it() -> None:
    x, side_info = SPEECH.analysis(SpeechSignal(voiced(16000, 0.5), 16000))
    assert side_info["pf"] == POSTFILTER_PERCENT > 0
    older = {k: v for k, v in side_info.items() if k != "pf"}
    plain = SPEECH.synthesis(x, older).samples
    np.testing.assert_array_equal(SPEECH.synthesis(x, {**side_info, "pf": 0}).samples, plain)
    assert not np.array_equal(SPEECH.synthesis(x, side_info).samples, plain)


def test_the_mel_ceiling_vocodes_the_exact_log_mel_without_the_post_filter() -> None:
    signal = SpeechSignal(voiced(16000, 0.5), 16000)
    ceiling = MelCeiling()
    decoded = ceiling.decode(ceiling.encode(signal, "float16"), None)
    x, side_info = SPEECH.analysis(signal)
    plain = SPEECH.synthesis(x.half().float(), {**side_info, "pf": 0})
    np.testing.assert_array_equal(decoded.samples, plain.samples)


def test_the_post_filter_widens_each_band_around_its_mean_over_the_utterance() -> None:
    logmel = torch.tensor([[0.0, 2.0, 4.0, 100.0], [-1.0, -1.0, -1.0, -1.0]])
    expanded = expand_deviations(logmel, frames=3, factor=1.5)  # frame 3 is padding
    torch.testing.assert_close(expanded[0], torch.tensor([-1.0, 2.0, 5.0, 149.0]))
    torch.testing.assert_close(expanded[1], logmel[1])  # a flat band stays put


def test_rate_is_kilobits_per_second_of_the_original() -> None:
    signal = SpeechSignal(np.zeros((44100 * 2, 2), np.float32), 44100)
    assert SPEECH.rate(4000, signal) == pytest.approx(2.0)


def test_the_bench_reports_clips_below_16_khz_apart_as_narrowband() -> None:
    def clip(rate: int) -> SpeechSignal:
        return SpeechSignal(voiced(rate, 0.1), rate)

    assert bench_group(SPEECH, clip(8000)) == "narrowband"
    assert bench_group(SPEECH, clip(11025)) == "narrowband"
    assert bench_group(SPEECH, clip(16000)) == "wideband"
    assert bench_group(SPEECH, clip(48000)) == "wideband"


def test_a_narrowband_clip_is_searched_only_on_the_bands_its_rate_holds() -> None:
    centres = mel_centres(SPECTROGRAM)
    held = audible_bands(8000)
    assert centres[held - 1] < 4000 <= centres[held] and audible_bands(16000) == len(centres)
    x = torch.zeros(1, len(centres), 16)
    x_hat = x.clone()
    x_hat[:, held:] = 5.0  # wrong only above 4 kHz, which an 8 kHz file cannot hold
    narrow = SPEECH.search_distortion({"sr": 8000})
    assert float(narrow(x_hat, x)) == 0.0
    assert float(SPEECH.search_distortion({"sr": 16000})(x_hat, x)) > 0.0
    x_hat[:, held - 1] = 5.0
    assert float(narrow(x_hat, x)) > 0.0


def test_errors_far_below_the_loudest_value_do_not_count() -> None:
    depth = math.log(10.0 ** (AUDIBLE_RANGE_DB / 20.0)) / LOGMEL_SCALE
    x = torch.full((2, SPECTROGRAM.n_mels, 16), -1.5)
    x[0, 10, 3] = 2.0  # item 0's loudest value: its floor lies `depth` below it
    x_hat = x.clone()
    x_hat[:, 40:] = 2.0 - depth - 0.01  # under item 0's floor, above item 1's (-1.5 - depth)
    heard = (2.0 - depth - 0.01 + 1.5) * 88 / 128
    assert SPEECH.distortion(x_hat, x).tolist() == [0.0, pytest.approx(heard, rel=1e-5)]
    x_hat[0, 40:] = 2.0 - depth + 0.5  # now heard above it
    assert float(SPEECH.distortion(x_hat, x)[0]) == pytest.approx(0.5 * 88 / 128, rel=1e-5)
    everywhere = SpeechModality(audible_range_db=None).distortion(x_hat, x)
    assert float(everywhere[0]) == pytest.approx((2.0 - depth + 0.5 + 1.5) * 88 / 128, rel=1e-5)


def test_one_bundled_model_serves_every_rate_from_one_to_two_kbps() -> None:
    assert SPEECH.default_model(None) == SPEECH.default_model("1.5kbps") == DEFAULT_MODEL
    codec = load_codec(modality="speech")
    assert codec.rate_range == (1.0, 2.0) and codec.default_rate == 2.0


def test_metrics_report_pesq_wideband_narrowband_and_stoi() -> None:
    signal = SpeechSignal(voiced(16000, 2.0), 16000)
    scores = SPEECH.metrics(signal, exact_round_trip(signal))
    assert set(scores) == {"pesq_wb", "pesq_nb", "stoi"}
    assert scores["stoi"] > 0.8


def test_long_signals_are_analysed_in_chunks_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    signal = SpeechSignal(voiced(16000, 3.0), 16000)
    whole, _ = SPEECH.analysis(signal)
    monkeypatch.setattr(modality_module, "CHUNK_FRAMES", 64)
    chunked, _ = SPEECH.analysis(signal)
    # Chunks see exactly the samples the whole does; only matrix products of another size
    # may round differently in the last place (a seam would be off by far more).
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-5)


def test_chunked_vocoding_has_no_seams_in_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    syllables = voiced(16000, 6.0) * (np.sin(np.linspace(0, 12 * np.pi, 96000)) > -0.3)[:, None]
    signal = SpeechSignal(syllables.astype(np.float32), 16000)
    x, side_info = SPEECH.analysis(signal)
    whole = SPEECH.synthesis(x, side_info)
    monkeypatch.setattr(modality_module, "CHUNK_FRAMES", 150)
    monkeypatch.setattr(modality_module, "SEARCH_FRAMES", 60)
    chunked = SPEECH.synthesis(x, side_info)
    assert chunked.samples.shape == whole.samples.shape
    # measured: 0.0732 chunked, 0.0713 whole
    assert mel_error(signal, chunked) < mel_error(signal, whole) + 0.005


def test_long_inputs_run_through_the_networks_tile_by_tile() -> None:
    network = {**DEFAULT_NETWORK, "widths": [16, 16], "stem_width": 16, "latent_channels": 4}
    encoder, generator, _ = SPEECH.build_networks(network)
    x = torch.randn(1, 128, TILE_FRAMES * 2 + 100)
    with torch.no_grad():
        tiled = generator.eval()(encoder.eval()(x))
        whole = torch.nn.Sequential(*generator)(torch.nn.Sequential(*encoder)(x))
    assert torch.allclose(tiled, whole, atol=1e-5)


# --------------------------------------------------------------------------- with a model


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Card of a tiny speech model trained for 30 steps on voiced tones."""
    data = tmp_path_factory.mktemp("speech-data")
    for seed in range(4):
        write(data / f"tone{seed}.wav", voiced(16000, 1.0, seed=seed), 16000)
    network = {
        "widths": [32, 32],
        "stem_width": 32,
        "latent_channels": 4,
        "residual_blocks": 1,
        "discriminator_width": 8,
        "discriminator_scales": 1,
    }
    steps = {
        "float_steps": 10,
        "soft_steps": 10,
        "hard_steps": 10,
        "batch_size": 4,
        "crop": [32],
        "adversarial_start": 20,
        "checkpoint_every": 100,
    }
    config = merge(
        SPEECH.default_config(),
        {"name": "speech-tiny", "network": network, "train": steps, "admm": {"iterations": 3}},
    )
    card = train(SPEECH, config, data, tmp_path_factory.mktemp("speech-model"))
    assert card is not None
    return card


def test_a_trained_model_codes_any_layout_back_to_it(tiny_model: Path) -> None:
    codec = Codec(SPEECH, load_model(tiny_model, SPEECH.build_networks))
    signal = SpeechSignal(voiced(44100, 0.77, channels=2, seed=9), 44100, "PCM_24")
    for iterations in (0, None):
        data, report = codec.encode(signal, admm_iterations=iterations)
        decoded = codec.decode(data)
        assert decoded.samples.shape == signal.samples.shape
        assert (decoded.sample_rate, decoded.subtype) == (44100, "PCM_24")
        assert report.rate == pytest.approx(8 * len(data) / 0.77 / 1000, rel=1e-3)


def test_the_search_codes_a_narrowband_clip_for_its_own_bands(tiny_model: Path) -> None:
    codec = Codec(SPEECH, load_model(tiny_model, SPEECH.build_networks))
    signal = SpeechSignal(voiced(8000, 0.6, seed=4), 8000)
    data, report = codec.encode(signal)
    header, indices = codec.decode_indices(data)
    x = SPEECH.analysis(signal)[0][None]
    point = codec.check_header(header)
    with torch.no_grad():
        x_hat = point.generator(codec.model.quantizer.dequantize(indices)[None])
    narrow = SPEECH.search_distortion(header.side_info)(x_hat, x)
    assert report.distortion == pytest.approx(float(narrow), rel=1e-4)
    assert report.distortion != pytest.approx(float(SPEECH.distortion(x_hat, x)), rel=1e-2)


def test_cli_round_trip(tiny_model: Path, tmp_path: Path) -> None:
    source = write(tmp_path / "clip.flac", voiced(8000, 1.0), 8000, "PCM_16")
    packed, restored = tmp_path / "clip.ucz", tmp_path / "clip.wav"
    # One thread: on a busy 2-core machine more threads make small convolutions slower.
    env = {**os.environ, "UNICOMP_MODEL_PATH": str(tiny_model.parent), "OMP_NUM_THREADS": "1"}
    done = run_cli("compress", str(source), "--model", "speech-tiny", "-o", str(packed), env=env)
    assert done.returncode == 0, done.stderr
    done = run_cli("decompress", str(packed), "-o", str(restored), env=env)
    assert done.returncode == 0, done.stderr
    info = sf.info(str(restored))
    assert (info.samplerate, info.frames, info.channels) == (8000, 8000, 1)

"""Bad inputs through the CLI: each is refused in one line with its exit code, or coded.

Refused inputs are checked with a model that does not exist, to show the input is
judged first. Unusual but valid audio and images are coded end to end by models with
random weights: sizes, layouts and sample formats are what is checked, not quality.
test_cli.py covers missing inputs, truncated .ucz files, missing output folders and a
.ucz of another model; this file covers the rest of the README's "Bad inputs" table.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import png_header_only, random_model, write_csv
from PIL import Image
from unicomp_sensor.synthetic import synthetic_reading

from unicomp.core.codec import Codec
from unicomp.modalities.image.modality import ImageModality
from unicomp.modalities.speech.modality import SpeechModality
from unicomp.plugins.manager import get_registry

RATE = 16000
RNG = np.random.default_rng(5)


def tone(seconds: float = 0.5, rate: int = RATE, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return np.repeat(wave[:, None], channels, axis=1).astype(np.float32)


def wav(samples: np.ndarray, rate: int = RATE, subtype: str = "PCM_16") -> Callable[[Path], None]:
    return lambda path: sf.write(str(path), samples, rate, subtype=subtype)


def raw(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


def with_sample(value: float) -> np.ndarray:
    samples = tone()
    samples[100] = value
    return samples


def image(pixels: np.ndarray, mode: str) -> Callable[[Path], None]:
    return lambda path: Image.fromarray(pixels, mode).save(path)


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert result.returncode == code, result.stderr
    assert text in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def leftovers(folder: Path) -> list[str]:
    """Outputs and temporaries a failed command may have left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.suffix == ".ucz" or ".part" in p.name)


@pytest.fixture(scope="module")
def speech_card(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_model(SpeechModality(), tmp_path_factory.mktemp("speech-model"))


@pytest.fixture(scope="module")
def image_card(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_model(ImageModality(), tmp_path_factory.mktemp("image-model"))


@pytest.fixture()
def reading(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "reading.csv", synthetic_reading(RNG, 1500))


# --------------------------------------------------------------------------- refused inputs


@pytest.mark.parametrize(
    ("name", "make", "text"),
    [
        ("empty.wav", raw(b""), "cannot read"),
        ("empty.png", raw(b""), "file is empty"),
        ("text.wav", raw(b"hello, not audio\n"), "cannot read"),
        ("text.png", raw(b"hello, not an image\n"), "not a recognised image"),
        ("zero.wav", wav(np.zeros((0, 1), np.float32)), "no audio samples"),
        ("nan.wav", wav(with_sample(np.nan), subtype="FLOAT"), "NaN or infinite"),
        ("inf.wav", wav(with_sample(np.inf), subtype="FLOAT"), "NaN or infinite"),
        ("one.png", image(np.zeros((1, 1, 3), np.uint8), "RGB"), "at least 16x16"),
        # 100000 x 100000 RGB would take 30 GB: refused from the header of a 69-byte file.
        ("bomb.png", raw(png_header_only(100_000, 100_000)), "too large"),
    ],
)
def test_unusable_inputs_are_refused_before_the_model_is_looked_for(
    cli, tmp_path: Path, name: str, make: Callable[[Path], None], text: str
) -> None:
    make(tmp_path / name)
    result = cli("compress", str(tmp_path / name), "--model", "no-such-model")
    assert_one_line_error(result, 3, text)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (("info", "{dir}"), 3, "is not a file"),
        (("decompress", "{dir}"), 2, "name the output folder with -o"),
        (("compress", "{dir}/reading.csv", "-o", "{dir}"), 3, "is a directory"),
        (("decompress", "{dir}/missing.ucz"), 3, "does not exist"),
        (("info", "{dir}/missing.ucz"), 3, "does not exist"),
    ],
)
def test_a_folder_or_nothing_where_a_file_is_expected(
    cli, reading: Path, args: tuple[str, ...], code: int, text: str
) -> None:
    assert_one_line_error(cli(*(arg.format(dir=reading.parent) for arg in args)), code, text)


def test_an_output_folder_that_is_a_file_is_refused(cli, reading: Path) -> None:
    result = cli("compress", str(reading), "-o", str(reading / "x.ucz"))
    assert_one_line_error(result, 3, f"output folder {reading} is not a folder")


@pytest.fixture()
def immutable_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder nobody may write in, root included (chattr +i; root ignores mode bits)."""
    folder = tmp_path / "locked"
    folder.mkdir()
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    locked = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
    if locked.returncode != 0:
        pytest.skip(f"cannot make a folder immutable here: {locked.stderr.decode().strip()}")
    yield folder
    subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_a_read_only_output_folder_is_refused_before_any_work(
    cli, reading: Path, immutable_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("encoded although the output cannot be written")

    monkeypatch.setattr(Codec, "encode", no_work)
    result = cli("compress", str(reading), "-o", str(immutable_folder / "x.ucz"))
    assert_one_line_error(result, 3, "is not writable")
    assert list(immutable_folder.iterdir()) == []


# --------------------------------------------------------------------------- a full disk


def fill_half_then_fail(original: Callable[..., int]) -> Callable[..., int]:
    """A Path writer that gets half the data onto the disk, then finds the disk full."""

    def write(path: Path, data: bytes | str, *args: object, **kwargs: object) -> int:
        original(path, data[: len(data) // 2], *args, **kwargs)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    return write


def test_a_full_disk_leaves_no_partial_ucz(
    cli, reading: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(Path, "write_bytes", fill_half_then_fail(Path.write_bytes))
    result = cli("compress", str(reading), "-o", str(out / "x.ucz"))
    assert_one_line_error(result, 3, f"cannot write {out / 'x.ucz'}: No space left on device")
    assert list(out.iterdir()) == []


def test_a_full_disk_leaves_no_partial_decoded_file(
    cli, reading: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("compress", str(reading), "-q").returncode == 0
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(Path, "write_text", fill_half_then_fail(Path.write_text))
    result = cli("decompress", str(reading.with_suffix(".ucz")), "-o", str(out / "x.csv"))
    assert_one_line_error(result, 3, "No space left on device")
    assert list(out.iterdir()) == []


@pytest.fixture()
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A real, full file system: a 64 KiB tmpfs filled up (needs root and mount rights)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        with pytest.raises(OSError) as full, open(disk / "filler", "wb") as filler:
            filler.write(b"\0" * (1 << 20))
        assert full.value.errno == errno.ENOSPC
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_really_full_disk_is_an_input_error_for_every_writer(
    cli, reading: Path, speech_card: Path, full_disk: Path
) -> None:
    result = cli("compress", str(reading), "-o", str(full_disk / "x.ucz"))
    assert_one_line_error(result, 3, "No space left on device")

    speech = reading.with_name("speech.wav")
    wav(tone())(speech)
    packed = reading.with_name("speech.ucz")
    model = ("--model", str(speech_card))
    assert cli("compress", str(speech), *model, "--admm-iters", "0", "-q").returncode == 0
    result = cli("decompress", str(packed), *model, "-o", str(full_disk / "x.wav"))
    assert_one_line_error(result, 3, f"cannot write {full_disk / 'x.wav'}: No space left")
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]


# --------------------------------------------------------------------------- wrong .ucz


def test_a_ucz_of_another_modality_is_a_model_error(
    cli, reading: Path, image_card: Path, tmp_path: Path
) -> None:
    assert cli("compress", str(reading), "-q").returncode == 0
    model = ("--model", str(image_card))
    result = cli("decompress", str(reading.with_suffix(".ucz")), *model, "-o", str(tmp_path / "x"))
    assert_one_line_error(result, 5, "file holds 'sensor' data")


def test_a_ucz_no_installed_plugin_decodes_is_a_model_error(
    cli, reading: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("compress", str(reading), "-q").returncode == 0
    monkeypatch.setenv("UNICOMP_DISABLE_PLUGINS", "sensor")
    get_registry.cache_clear()
    result = cli("decompress", str(reading.with_suffix(".ucz")))
    assert_one_line_error(result, 5, "no installed plugin decodes it")


# --------------------------------------------------------------------------- unusual audio


@pytest.mark.parametrize(
    ("samples", "rate", "subtype"),
    [
        pytest.param(np.full((1, 1), 0.5, np.float32), 16000, "PCM_16", id="one-sample"),
        pytest.param(np.full((1, 1), 0.5, np.float32), 44100, "PCM_16", id="one-sample-44k"),
        pytest.param(np.zeros((8000, 1), np.float32), 16000, "PCM_16", id="silence"),
        pytest.param(np.clip(tone() * 10, -1, 1), 16000, "PCM_16", id="clipped"),
        pytest.param(tone() * 10, 16000, "FLOAT", id="float-beyond-full-scale"),
        pytest.param(tone(), 16000, "PCM_U8", id="8-bit"),
        pytest.param(tone(), 22050, "PCM_16", id="16-bit"),
        pytest.param(tone(), 16000, "PCM_24", id="24-bit"),
        pytest.param(tone(), 8000, "PCM_32", id="32-bit"),
        pytest.param(tone(), 48000, "FLOAT", id="float"),
        pytest.param(tone(channels=6), 16000, "PCM_16", id="6-channels"),
    ],
)
def test_unusual_audio_comes_back_in_its_own_layout(
    cli, tmp_path: Path, speech_card: Path, samples: np.ndarray, rate: int, subtype: str
) -> None:
    source, packed, decoded = tmp_path / "in.wav", tmp_path / "in.ucz", tmp_path / "out.wav"
    wav(samples, rate, subtype)(source)
    model = ("--model", str(speech_card))
    assert cli("compress", str(source), *model, "-q").returncode == 0
    assert cli("decompress", str(packed), *model, "-o", str(decoded)).returncode == 0
    before, after = sf.info(str(source)), sf.info(str(decoded))
    layout = ("frames", "channels", "samplerate", "subtype")
    assert [getattr(after, key) for key in layout] == [getattr(before, key) for key in layout]
    restored, _ = sf.read(str(decoded), always_2d=True)
    assert np.isfinite(restored).all()
    if not samples.any():  # silence stays silent (within one 16-bit step)
        assert np.abs(restored).max() <= 1 / 32768


# --------------------------------------------------------------------------- unusual images


def photo(channels: int, dtype: type = np.uint8) -> np.ndarray:
    top = np.iinfo(dtype).max
    ramp = np.linspace(0, 1, 24 * 40).reshape(24, 40, 1) * RNG.uniform(0.3, 1, channels)
    return (ramp * top).astype(dtype)


def cmyk(path: Path) -> None:
    Image.frombytes("CMYK", (40, 24), photo(4).tobytes()).save(path)


def palette(path: Path) -> None:
    Image.fromarray(photo(3)).convert("P").save(path)


def sixteen_bit(path: Path) -> None:
    Image.frombytes("I;16", (40, 24), photo(1, np.uint16).astype("<u2").tobytes()).save(path)


def rgba(alpha: int) -> Callable[[Path], None]:
    pixels = photo(4)
    pixels[:, :, 3] = alpha
    return image(pixels, "RGBA")


@pytest.mark.parametrize(
    ("name", "make", "mode"),
    [
        ("cmyk.jpg", cmyk, "RGB"),
        ("palette.png", palette, "RGB"),
        ("sixteen.png", sixteen_bit, "I;16"),
        ("opaque.png", rgba(255), "RGBA"),
    ],
)
def test_image_layouts_decode_to_their_canonical_mode(
    cli, tmp_path: Path, image_card: Path, name: str, make: Callable[[Path], None], mode: str
) -> None:
    make(tmp_path / name)
    model = ("--model", str(image_card))
    packed, decoded = tmp_path / "x.ucz", tmp_path / "out.png"
    assert cli("compress", str(tmp_path / name), *model, "-o", str(packed)).returncode == 0
    assert cli("decompress", str(packed), *model, "-o", str(decoded)).returncode == 0
    with Image.open(decoded) as result:
        assert (result.mode, result.size) == (mode, (40, 24))


def test_a_transparent_image_is_refused(cli, tmp_path: Path, image_card: Path) -> None:
    rgba(7)(tmp_path / "clear.png")
    result = cli("compress", str(tmp_path / "clear.png"), "--model", str(image_card))
    assert_one_line_error(result, 3, "transparency")
    assert leftovers(tmp_path) == []

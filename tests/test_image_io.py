"""Tests for unicomp.modalities.image.io and .metrics (image loading, saving, tensors, metrics)."""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import png_header_only
from PIL import Image

from unicomp.errors import InputError
from unicomp.modalities.image import io
from unicomp.modalities.image.io import (
    ImageSignal,
    crop_to,
    from_tensor,
    has_alpha,
    load_image,
    pad_to_multiple,
    save_image,
    to_tensor,
)
from unicomp.modalities.image.metrics import (
    _reduced_ms_ssim,
    chroma_psnr,
    flat_psnr,
    image_metrics,
    ms_ssim,
    psnr,
)

H, W = 24, 40  # deliberately non-square and not a multiple of 16
RNG = np.random.default_rng(1234)


# --------------------------------------------------------------------------- fixtures


def _noise(shape: tuple[int, ...], dtype: type = np.uint8) -> np.ndarray:
    hi = 65536 if dtype == np.uint16 else 256
    return RNG.integers(0, hi, size=shape, dtype=np.int64).astype(dtype)


def make_image(mode: str) -> Image.Image:
    """A random image of the given mode; 'P+t' is a palette image with transparency."""
    if mode == "RGB":
        return Image.fromarray(_noise((H, W, 3)), "RGB")
    if mode == "RGBA":
        return Image.fromarray(_noise((H, W, 4)), "RGBA")
    if mode == "L":
        return Image.fromarray(_noise((H, W)), "L")
    if mode == "LA":
        return Image.fromarray(_noise((H, W, 2)), "LA")
    if mode == "CMYK":
        return Image.frombytes("CMYK", (W, H), _noise((H, W, 4)).tobytes())
    if mode == "I;16":
        return Image.frombytes("I;16", (W, H), _noise((H, W), np.uint16).astype("<u2").tobytes())
    if mode in ("P", "P+t"):
        img = Image.fromarray(_noise((H, W)) % 200, "P")
        img.putpalette(_noise((256 * 3,)).tolist())
        if mode == "P+t":
            img.info["transparency"] = 7
        return img
    raise AssertionError(mode)


def expected_pixels(src: Image.Image, mode: str) -> np.ndarray:
    """What load_image should return for a losslessly stored ``src``."""
    if mode == "I;16":
        return np.frombuffer(src.tobytes(), dtype="<u2").reshape(H, W, 1)
    conv = src.convert(mode) if src.mode != mode else src
    arr = np.asarray(conv)
    return arr[:, :, None] if arr.ndim == 2 else arr


SAVE_OPTS = {
    "PNG": {},
    "WEBP": {"lossless": True, "exact": True},
    "BMP": {},
    "TIFF": {},
    "JPEG": {"quality": 95},
}
EXT = {"PNG": "png", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif", "JPEG": "jpg"}

# (source mode, file format, mode the signal should have)
LOSSLESS_CASES = [
    ("RGB", "PNG", "RGB"),
    ("L", "PNG", "L"),
    ("P", "PNG", "RGB"),
    ("P+t", "PNG", "RGBA"),
    ("I;16", "PNG", "I;16"),
    ("RGBA", "PNG", "RGBA"),
    ("LA", "PNG", "LA"),
    ("RGB", "WEBP", "RGB"),
    ("RGBA", "WEBP", "RGBA"),
    ("RGB", "BMP", "RGB"),
    ("L", "BMP", "L"),
    ("P", "BMP", "RGB"),
    ("RGB", "TIFF", "RGB"),
    ("L", "TIFF", "L"),
    ("P", "TIFF", "RGB"),
    ("I;16", "TIFF", "I;16"),
    ("RGBA", "TIFF", "RGBA"),
    ("CMYK", "TIFF", "RGB"),
]


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(("src_mode", "fmt", "mode"), LOSSLESS_CASES)
def test_lossless_round_trip(tmp_path: Path, src_mode: str, fmt: str, mode: str) -> None:
    src = make_image(src_mode)
    path = tmp_path / f"in.{EXT[fmt]}"
    src.save(path, format=fmt, **SAVE_OPTS[fmt])

    sig = load_image(path)
    assert sig.mode == mode
    assert sig.pixels.shape[:2] == (H, W)
    np.testing.assert_array_equal(sig.pixels, expected_pixels(src, mode))
    assert has_alpha(sig) == (mode in ("RGBA", "LA"))

    t = to_tensor(sig)
    assert t.shape == (3, H, W) and t.dtype == torch.float32
    assert 0.0 <= float(t.min()) and float(t.max()) <= 1.0
    back = from_tensor(t, like=sig)
    assert back.mode == sig.mode
    np.testing.assert_array_equal(back.pixels, sig.pixels)

    out = tmp_path / f"out.{EXT[fmt]}"
    save_image(back, out)
    again = load_image(out)
    assert again.mode == sig.mode
    np.testing.assert_array_equal(again.pixels, sig.pixels)


@pytest.mark.parametrize("src_mode", ["RGB", "L", "CMYK"])
def test_jpeg_loads(tmp_path: Path, src_mode: str) -> None:
    src = make_image(src_mode)
    path = tmp_path / "in.jpg"
    src.save(path, format="JPEG", quality=95)
    sig = load_image(path)
    assert sig.mode == ("L" if src_mode == "L" else "RGB")
    assert sig.pixels.shape[:2] == (H, W) and sig.pixels.dtype == np.uint8
    # The tensor round trip and a PNG save are exact even for a lossy source.
    back = from_tensor(to_tensor(sig), like=sig)
    np.testing.assert_array_equal(back.pixels, sig.pixels)
    save_image(back, tmp_path / "out.png")
    np.testing.assert_array_equal(load_image(tmp_path / "out.png").pixels, sig.pixels)


def test_exif_orientation_applied(tmp_path: Path) -> None:
    arr = np.zeros((H, W, 3), dtype=np.uint8)
    arr[:, : W // 2] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rot.jpg"
    Image.fromarray(arr, "RGB").save(path, exif=exif, quality=95)

    sig = load_image(path)
    assert sig.pixels.shape == (W, H, 3)  # rotated: now W rows by H columns
    # A clockwise rotation moves the left half to the top.
    top = sig.pixels[: W // 2 - 2].mean()
    bottom = sig.pixels[W // 2 + 2 :].mean()
    assert top > 200 and bottom < 50


def test_sixteen_bit_big_endian_tiff(tmp_path: Path) -> None:
    vals = _noise((H, W), np.uint16)
    img = Image.frombytes("I;16B", (W, H), vals.astype(">u2").tobytes())
    path = tmp_path / "be.tif"
    img.save(path)
    sig = load_image(path)
    assert sig.mode == "I;16" and sig.pixels.dtype == np.uint16
    np.testing.assert_array_equal(sig.pixels[:, :, 0], vals)


def test_one_bit_image_loads_as_grey(tmp_path: Path) -> None:
    img = Image.fromarray(_noise((H, W)) > 127).convert("1")
    path = tmp_path / "bw.png"
    img.save(path)
    sig = load_image(path)
    assert sig.mode == "L"
    assert set(np.unique(sig.pixels)) <= {0, 255}


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (100_000, 100_000),  # far beyond Pillow's limit: DecompressionBombError
        (10_000, 10_000),  # between 1x and 2x Pillow's limit: DecompressionBombWarning
        (9_000, 8_000),  # under Pillow's limit, over ours (72 MP > 64 MiP): our own check
    ],
)
def test_decompression_bomb_refused_fast(tmp_path: Path, width: int, height: int) -> None:
    assert io.MAX_PIXELS < 9_000 * 8_000 < Image.MAX_IMAGE_PIXELS
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(width, height))
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no Pillow warning may leak either
        with pytest.raises(InputError, match="too large|decompression bomb guard") as err:
            load_image(path)
    assert time.perf_counter() - start < 1.0
    if width * height < Image.MAX_IMAGE_PIXELS:  # only our own limit can have fired
        assert f"{width}x{height}" in str(err.value)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_own_pixel_limit_is_checked_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ok.png"
    make_image("RGB").save(path)
    monkeypatch.setattr(io, "MAX_PIXELS", H * W - 1)
    with pytest.raises(InputError, match=f"{W}x{H}"):
        load_image(path)


@pytest.mark.parametrize(("width", "height"), [(1, 1), (15, 40), (40, 15)])
def test_too_small_refused(tmp_path: Path, width: int, height: int) -> None:
    path = tmp_path / "small.png"
    Image.new("RGB", (width, height)).save(path)
    with pytest.raises(
        InputError, match=rf"image is {width}x{height}; unicomp needs at least 16x16"
    ):
        load_image(path)


def test_minimum_size_accepted(tmp_path: Path) -> None:
    path = tmp_path / "min.png"
    Image.new("RGB", (16, 16)).save(path)
    assert load_image(path).pixels.shape == (16, 16, 3)


def test_text_file_named_png_refused(tmp_path: Path) -> None:
    path = tmp_path / "fake.png"
    path.write_text("this is not an image\n")
    with pytest.raises(InputError) as err:
        load_image(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_directory_and_empty_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(InputError, match="not a regular file"):
        load_image(tmp_path)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        load_image(empty)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "TIFF", "BMP"])
def test_truncated_file_refused(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"cut.{EXT[fmt]}"
    make_image("RGB").save(path, format=fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as err:
        load_image(path)
    assert str(path) in str(err.value)


def test_float_image_refused(tmp_path: Path) -> None:
    path = tmp_path / "f.tif"
    Image.fromarray(np.zeros((H, W), dtype=np.float32), "F").save(path)
    with pytest.raises(InputError, match="floating-point"):
        load_image(path)


# --------------------------------------------------------------------------- saving


def test_save_falls_back_when_format_cannot_store_mode(tmp_path: Path) -> None:
    vals = np.array([[0, 257, 65535, 128 * 257]] * 16 * 4, dtype=np.uint16).reshape(16, 16, 1)
    sig16 = ImageSignal(vals, "I;16")
    save_image(sig16, tmp_path / "g.jpg")
    got = load_image(tmp_path / "g.jpg")
    assert got.mode == "L"

    rgba = ImageSignal(_noise((16, 16, 4)), "RGBA")
    save_image(rgba, tmp_path / "a.jpg")
    assert load_image(tmp_path / "a.jpg").mode == "RGB"

    grey = ImageSignal(_noise((16, 16, 1)), "L")
    save_image(grey, tmp_path / "g.webp")
    got = load_image(tmp_path / "g.webp")
    assert got.mode == "RGB"
    np.testing.assert_array_equal(got.pixels, np.repeat(grey.pixels, 3, axis=2))


def test_save_unknown_extension_writes_png_to_exact_path(tmp_path: Path) -> None:
    sig = ImageSignal(_noise((16, 20, 3)), "RGB")
    path = tmp_path / "decoded.tmp"
    save_image(sig, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["decoded.tmp"]
    assert path.read_bytes().startswith(b"\x89PNG")
    np.testing.assert_array_equal(load_image(path).pixels, sig.pixels)


def test_save_to_missing_directory_is_input_error(tmp_path: Path) -> None:
    sig = ImageSignal(_noise((16, 16, 3)), "RGB")
    with pytest.raises(InputError):
        save_image(sig, tmp_path / "nope" / "x.png")


def test_signal_validates_layout() -> None:
    with pytest.raises(ValueError):
        ImageSignal(np.zeros((16, 16, 3), np.uint8), "L")
    with pytest.raises(ValueError):
        ImageSignal(np.zeros((16, 16, 1), np.uint8), "I;16")


# --------------------------------------------------------------------------- tensors


def test_to_tensor_scaling_and_grey_replication() -> None:
    sig = ImageSignal(np.full((16, 16, 1), 65535, np.uint16), "I;16")
    t = to_tensor(sig)
    assert t.shape == (3, 16, 16) and torch.all(t == 1.0)
    sig8 = ImageSignal(np.full((16, 16, 2), 51, np.uint8), "LA")
    assert torch.allclose(to_tensor(sig8), torch.full((3, 16, 16), 0.2))


def test_from_tensor_rounds_and_clips() -> None:
    like = ImageSignal(np.zeros((16, 16, 3), np.uint8), "RGB")
    t = torch.zeros(1, 3, 16, 16)
    t[0, 0, 0, 0] = -0.3
    t[0, 1, 0, 0] = 1.7
    t[0, 2, 0, 0] = 100.6 / 255
    t[0, 2, 0, 1] = 100.4 / 255
    px = from_tensor(t, like).pixels
    assert px[0, 0].tolist() == [0, 255, 101]
    assert px[0, 1, 2] == 100

    like16 = ImageSignal(np.zeros((16, 16, 1), np.uint16), "I;16")
    t16 = torch.full((3, 16, 16), 1000.6 / 65535)
    out = from_tensor(t16, like16)
    assert out.pixels.dtype == np.uint16 and np.all(out.pixels == 1001)


def test_from_tensor_keeps_alpha_of_reference() -> None:
    like = ImageSignal(_noise((16, 16, 4)), "RGBA")
    out = from_tensor(torch.zeros(3, 16, 16), like)
    np.testing.assert_array_equal(out.pixels[:, :, 3], like.pixels[:, :, 3])
    assert np.all(out.pixels[:, :, :3] == 0)


def test_from_tensor_size_mismatch_is_error() -> None:
    like = ImageSignal(np.zeros((16, 16, 3), np.uint8), "RGB")
    with pytest.raises(ValueError):
        from_tensor(torch.zeros(3, 16, 17), like)


@pytest.mark.parametrize("multiple", [16, 64])
@pytest.mark.parametrize(("h", "w"), [(17, 33), (16, 16), (1, 5), (2, 70), (64, 1)])
def test_pad_and_crop_exact(h: int, w: int, multiple: int) -> None:
    t = torch.rand(3, h, w)
    padded, size = pad_to_multiple(t, multiple)
    assert size == (h, w)
    ph, pw = padded.shape[-2:]
    assert ph % multiple == 0 and pw % multiple == 0
    assert h <= ph < h + multiple and w <= pw < w + multiple
    assert torch.equal(padded[:, :h, :w], t)
    assert torch.equal(crop_to(padded, *size), t)
    # Reflection (not edge repetition) for the first padded rows/columns when possible.
    if h >= 2 and ph > h:
        assert torch.equal(padded[:, h, :w], t[:, h - 2])
    if w >= 2 and pw > w:
        assert torch.equal(padded[:, :h, w], t[:, :, w - 2])
    if h == 1:
        assert torch.equal(padded[:, -1, :w], t[:, 0])


def test_pad_batched_and_noop() -> None:
    t = torch.rand(2, 3, 17, 33)
    padded, size = pad_to_multiple(t, 16)
    assert padded.shape == (2, 3, 32, 48) and size == (17, 33)
    assert torch.equal(crop_to(padded, *size), t)
    same, _ = pad_to_multiple(torch.rand(3, 32, 48), 16)
    assert same.shape == (3, 32, 48)
    with pytest.raises(ValueError):
        pad_to_multiple(t, 0)


# --------------------------------------------------------------------------- metrics


def test_psnr_matches_hand_computation() -> None:
    ref = np.zeros((16, 16, 3), np.uint8)
    test = ref.copy()
    test[3, 4, 1] = 10
    test[0, 0, 0] = 3
    mse = (10**2 + 3**2) / (16 * 16 * 3)
    assert psnr(ref, test) == pytest.approx(10 * math.log10(255**2 / mse), abs=1e-9)
    assert psnr(ref, ref) == float("inf")
    # Wrap-around must not happen on uint8 subtraction.
    assert psnr(np.full_like(ref, 255), ref) == pytest.approx(0.0)


@pytest.mark.parametrize("size", [(256, 200), (48, 32), (16, 16)])
def test_ms_ssim_identity_and_monotone_in_noise(size: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[: size[0], : size[1]]
    ref = np.stack([(x * 3) % 256, (y * 5) % 256, ((x + y) * 2) % 256], axis=2).astype(np.uint8)
    assert ms_ssim(ref, ref) == pytest.approx(1.0, abs=1e-6)
    values = []
    for sigma in (2, 10, 40):
        noisy = np.clip(ref + rng.normal(0, sigma, ref.shape), 0, 255).astype(np.uint8)
        values.append(ms_ssim(ref, noisy))
    assert 1.0 > values[0] > values[1] > values[2] >= 0.0


def test_reduced_ms_ssim_matches_pytorch_msssim_at_five_scales() -> None:
    from pytorch_msssim import ms_ssim as reference

    rng = np.random.default_rng(5)
    a = rng.integers(0, 256, (200, 180, 3)).astype(np.uint8)
    b = np.clip(a + rng.normal(0, 15, a.shape), 0, 255).astype(np.uint8)
    x = torch.from_numpy(a).permute(2, 0, 1)[None].float()
    y = torch.from_numpy(b).permute(2, 0, 1)[None].float()
    ours = _reduced_ms_ssim(x, y, 180, levels=5)
    assert ours == pytest.approx(float(reference(x, y, data_range=255)), abs=1e-5)


def test_chroma_psnr_sees_a_colour_shift_and_not_a_grey_one() -> None:
    ref = (60 + _noise((32, 32, 3)) // 2).astype(np.uint8)  # 60..187: no clipping below
    # A colour shift that keeps the luma (0.299 R + 0.587 G + 0.114 B) ...
    colour = np.array([6, -6, 15])
    # ... and the same error added to all three channels: luma only.
    grey = np.random.default_rng(1).integers(-20, 21, size=(32, 32, 1))
    shifted, lighter = (np.clip(ref + d, 0, 255).astype(np.uint8) for d in (colour, grey))
    assert abs(psnr(ref, shifted) - psnr(ref, lighter)) < 3  # alike in RGB
    assert chroma_psnr(ref, shifted) < 35 and chroma_psnr(ref, lighter) > 60
    assert chroma_psnr(ref, ref) == float("inf")


def test_flat_psnr_sees_texture_painted_on_flat_regions_alone() -> None:
    rng = np.random.default_rng(2)
    ref = np.full((64, 64, 3), 40, dtype=np.uint8)  # left half flat...
    ref[:, 32:] = rng.integers(60, 200, size=(64, 32, 3))  # ...right half texture
    texture = rng.integers(-12, 13, size=(64, 32, 1))
    on_flat, on_texture = ref.copy(), ref.copy()
    on_flat[:, :32] = np.clip(ref[:, :32] + texture, 0, 255)
    on_texture[:, 32:] = np.clip(ref[:, 32:].astype(int) + texture, 0, 255)
    assert abs(psnr(ref, on_flat) - psnr(ref, on_texture)) < 1  # alike over the image
    # The grey error, spread over half the image in PSNR, is all of flat-region PSNR's.
    assert flat_psnr(ref, on_flat) == pytest.approx(psnr(ref, on_flat) - 10 * math.log10(2))
    assert flat_psnr(ref, on_texture) == float("inf")
    assert math.isnan(flat_psnr(on_texture[:, 32:], ref[:, 32:]))  # no flat block at all


def test_image_metrics_handles_grey_and_sixteen_bit() -> None:
    g8 = _noise((20, 24, 1))
    ref = ImageSignal(g8, "L")
    g16 = ImageSignal(g8.astype(np.uint16) * 257, "I;16")
    m = image_metrics(ref, g16)
    assert set(m) == {"psnr", "ms_ssim", "chroma_psnr", "flat_psnr"}
    assert m["psnr"] == float("inf") and m["ms_ssim"] == pytest.approx(1.0, abs=1e-6)
    assert math.isnan(m["chroma_psnr"])  # a grey photo has no colour to keep

    noisy = ImageSignal(np.clip(g8.astype(int) + 5, 0, 255).astype(np.uint8), "L")
    m = image_metrics(ref, noisy)
    assert 0 < m["psnr"] < float("inf") and m["ms_ssim"] < 1.0

    with pytest.raises(InputError):
        image_metrics(ref, ImageSignal(_noise((20, 25, 1)), "L"))

"""The image modality: every input mode and odd size round-trips to the same size and mode,
transparency is refused rather than dropped, the distortion works on training crops and
tiny images, large inputs are tiled without visible seams, and the CLI codes a PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli
from PIL import Image

from unicomp import api
from unicomp.core.checkpoint import Model, save_model
from unicomp.core.codec import Codec
from unicomp.core.coders import PER_CHANNEL
from unicomp.core.config import ModelConfig, merge
from unicomp.core.entropy import EntropyTables
from unicomp.core.networks import DivisiveNormalization
from unicomp.core.points import OperatingPoint
from unicomp.core.quantizer import Quantizer
from unicomp.core.trainer import train
from unicomp.errors import FormatError, InputError, UsageError
from unicomp.modalities.image import modality as image_modality
from unicomp.modalities.image.io import ImageSignal, load_image, save_image
from unicomp.modalities.image.modality import (
    DEFAULT_MODEL,
    MS_SSIM_MIN_SIDE,
    PAD_MULTIPLE,
    RATES,
    ImageModality,
)
from unicomp.modalities.image.networks import NONLINEARITIES
from unicomp.plugins.manager import build_registry

RNG = np.random.default_rng(7)
TINY_NETWORK = {
    "widths": [4, 8, 8, 8],
    "latent_channels": 4,
    "separable_stages": 2,
    "bottleneck_blocks": 1,
    "discriminator_width": 4,
    "discriminator_scales": 1,
}


@pytest.fixture(scope="module")
def image() -> ImageModality:
    return ImageModality()


def tiny_config(image: ImageModality) -> ModelConfig:
    """The defaults with a network of a few thousand parameters and a short search."""
    return merge(
        image.default_config(),
        {
            "name": "image-tiny",
            "network": TINY_NETWORK,
            "admm": {"iterations": 2, "inner_steps": 1},
            "train": {
                "float_steps": 10,
                "soft_steps": 10,
                "hard_steps": 10,
                "adversarial_start": 10,
                "batch_size": 4,
                "crop": [32, 32],
                "checkpoint_every": 100,
            },
        },
    )


@pytest.fixture(scope="module")
def untrained_card(image: ImageModality, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved model with random weights: enough wherever only shapes and modes matter."""
    torch.manual_seed(0)
    config = tiny_config(image)
    encoder, generator, _ = image.build_networks(config.network)
    tables = EntropyTables.uniform(TINY_NETWORK["latent_channels"], config.quantizer.num_centers)
    point = OperatingPoint(None, 0.0, tables, PER_CHANNEL, tables, generator)
    model = Model(config, encoder, Quantizer(config.quantizer), [point])
    return save_model(model, tmp_path_factory.mktemp("image-untrained"))


@pytest.fixture(scope="module")
def untrained(untrained_card: Path) -> Codec:
    return api.load_codec(untrained_card, registry=build_registry(autoload=False))


def photo(height: int, width: int, channels: int = 3, dtype: type = np.uint8) -> np.ndarray:
    """Smooth gradients plus noise: photo-like enough for a codec to have work to do."""
    top = np.iinfo(dtype).max
    rows = np.linspace(0, 1, height)[:, None, None]
    cols = np.linspace(0, 1, width)[None, :, None]
    tint = RNG.uniform(0.2, 1.0, size=(1, 1, channels))
    values = 0.5 * rows * tint + 0.3 * cols + 0.2 * RNG.random((height, width, channels))
    return (values * top).astype(dtype)


def opaque(pixels: np.ndarray) -> np.ndarray:
    alpha = np.full(pixels.shape[:2] + (1,), np.iinfo(pixels.dtype).max, pixels.dtype)
    return np.concatenate([pixels, alpha], axis=2)


MODES = {
    "L": lambda h, w: photo(h, w, 1),
    "RGB": lambda h, w: photo(h, w, 3),
    "I;16": lambda h, w: photo(h, w, 1, np.uint16),
    "LA": lambda h, w: opaque(photo(h, w, 1)),
    "RGBA": lambda h, w: opaque(photo(h, w, 3)),
}


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("size", [(17, 33), (16, 16), (40, 23)])
def test_every_mode_and_odd_size_decodes_to_the_same_size_mode_and_alpha(
    untrained: Codec, mode: str, size: tuple[int, int]
) -> None:
    signal = ImageSignal(MODES[mode](*size), mode)
    data, report = untrained.encode(signal)
    decoded = untrained.decode(data)
    assert decoded.mode == mode
    assert decoded.pixels.shape == signal.pixels.shape
    assert decoded.pixels.dtype == signal.pixels.dtype
    if mode in ("LA", "RGBA"):
        assert np.array_equal(decoded.pixels[:, :, -1], signal.pixels[:, :, -1])
    assert report.rate == pytest.approx(report.total_bits / (size[0] * size[1]))


def test_analysis_pads_to_the_network_multiple_and_records_the_original(
    image: ImageModality,
) -> None:
    x, side_info = image.analysis(ImageSignal(photo(17, 33), "RGB"))
    assert x.shape == (3, 32, 48)
    assert side_info == {"height": 17, "width": 33, "mode": "RGB"}


def test_transparent_images_are_refused_not_flattened(image: ImageModality) -> None:
    pixels = opaque(photo(20, 20))
    pixels[3, 4, 3] = 100
    with pytest.raises(InputError, match="transparency"):
        image.analysis(ImageSignal(pixels, "RGBA"))


@pytest.mark.parametrize(
    "side_info",
    [
        {"height": 17, "width": 33, "mode": "CMYK"},
        {"height": 17, "width": 49, "mode": "RGB"},
        {"height": 0, "width": 33, "mode": "RGB"},
        {"height": 15, "width": 33, "mode": "RGB"},
        {"width": 33, "mode": "RGB"},
    ],
)
def test_side_info_that_does_not_fit_the_decoded_tensor_is_a_format_error(
    image: ImageModality, side_info: dict
) -> None:
    with pytest.raises(FormatError):
        image.synthesis(torch.rand(3, 32, 48), side_info)


@pytest.mark.parametrize("side", [32, MS_SSIM_MIN_SIDE, 128])
def test_distortion_is_per_item_zero_on_identity_and_differentiable(
    image: ImageModality, side: int
) -> None:
    x = torch.rand(3, 3, side, side)
    x_hat = (x + 0.1 * torch.randn_like(x)).requires_grad_(True)
    value = image.distortion(x_hat, x)
    assert value.shape == (3,)
    assert torch.allclose(image.distortion(x, x), torch.zeros(3), atol=1e-6)
    value.sum().backward()
    assert torch.isfinite(x_hat.grad).all()


def test_distortion_weighs_dissimilarity_by_the_modality_weight() -> None:
    x = torch.rand(2, 3, MS_SSIM_MIN_SIDE, MS_SSIM_MIN_SIDE)
    x_hat = (x + 0.1 * torch.randn_like(x)).clamp(0.0, 1.0)
    mse = ((x_hat - x) ** 2).flatten(1).mean(dim=1)
    mse_only = ImageModality(ms_ssim_weight=0.0).distortion(x_hat, x)
    assert torch.allclose(mse_only, mse)
    light, heavy = (ImageModality(ms_ssim_weight=w).distortion(x_hat, x) for w in (0.05, 0.15))
    assert (light - mse > 1e-4).all()  # noise this strong lowers MS-SSIM
    assert torch.allclose(heavy - mse, 3 * (light - mse), rtol=1e-4)


def test_one_bundled_model_serves_every_rate_between_its_points(image: ImageModality) -> None:
    assert all(image.default_model(rate) == DEFAULT_MODEL for rate in (None, "0.2bpp", *RATES))
    assert image.default_config().rates == list(RATES)
    codec = api.load_codec(modality="image")
    assert codec.rate_range == (0.03, 0.25) and codec.default_rate == 0.12


def test_image_is_a_builtin_modality_that_writes_png() -> None:
    registry = build_registry(autoload=False)
    for suffix in (".png", ".JPG", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"):
        assert registry.modality_for(Path(f"x{suffix}")).name == "image"
    assert registry.modality("image").extensions[0] == ".png"
    assert registry.modality("image").rate_unit == "bpp"


@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
def test_tiled_networks_match_untiled_ones(image: ImageModality, nonlinearity: str) -> None:
    torch.manual_seed(1)
    both = {"encoder_nonlinearity": nonlinearity, "generator_nonlinearity": nonlinearity}
    encoder, generator, _ = image.build_networks({**TINY_NETWORK, **both})
    encoder.eval(), generator.eval()
    x, latent = torch.rand(1, 3, 352, 480), torch.randn(1, 4, 22, 30)
    with torch.no_grad():
        z, x_hat = encoder(x), generator(latent)
        encoder.tile, generator.tile = 320, 20  # several tiles per axis; overlaps unchanged
        assert torch.allclose(encoder(x), z, atol=1e-5)
        assert torch.allclose(generator(latent), x_hat, atol=1e-5)


def test_tiled_generator_passes_gradients_like_the_untiled_one(image: ImageModality) -> None:
    torch.manual_seed(3)
    _, generator, _ = image.build_networks(TINY_NETWORK)
    generator.eval().requires_grad_(False)
    latent = torch.randn(1, 4, 22, 30, requires_grad=True)
    generator(latent).square().sum().backward()
    whole = latent.grad.clone()
    latent.grad = None
    generator.tile = 20
    generator(latent).square().sum().backward()
    assert torch.allclose(latent.grad, whole, atol=1e-4)


@pytest.fixture(scope="module")
def trained_card(image: ImageModality, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained through all three phases on photo-like images."""
    data = tmp_path_factory.mktemp("image-data")
    for index in range(4):
        save_image(ImageSignal(photo(48, 64), "RGB"), data / f"photo{index}.png")
    card = train(image, tiny_config(image), data, tmp_path_factory.mktemp("image-model"))
    assert card is not None
    return card


def test_a_trained_model_round_trips_and_the_search_never_does_worse(
    image: ImageModality, trained_card: Path
) -> None:
    codec = api.load_codec(trained_card, registry=build_registry(autoload=False))
    signal = ImageSignal(photo(24, 40), "RGB")
    searched, with_search = codec.encode(signal)
    _, without = codec.encode(signal, admm_iterations=0)
    assert with_search.distortion <= without.distortion
    assert codec.decode(searched).pixels.shape == signal.pixels.shape


def test_cli_compresses_and_decompresses_a_png(trained_card: Path, tmp_path: Path) -> None:
    source = tmp_path / "x.png"
    save_image(ImageSignal(photo(17, 33), "RGB"), source)
    compressed = run_cli("compress", str(source), "--model", str(trained_card), "--quiet")
    assert compressed.returncode == 0, compressed.stderr
    output = tmp_path / "y.png"
    decompressed = run_cli(
        "decompress", str(tmp_path / "x.ucz"), "--model", str(trained_card), "-o", str(output)
    )
    assert decompressed.returncode == 0, decompressed.stderr
    assert load_image(output).pixels.shape == (17, 33, 3)


def test_compressing_a_transparent_png_is_an_input_error(
    trained_card: Path, tmp_path: Path
) -> None:
    source = tmp_path / "clear.png"
    Image.new("RGBA", (20, 20), (10, 20, 30, 0)).save(source)
    with pytest.raises(InputError, match="transparency"):
        api.compress(source, model=trained_card, registry=build_registry(autoload=False))
    assert not source.with_suffix(".ucz").exists()


def test_pad_multiple_matches_the_default_networks(image: ImageModality) -> None:
    encoder, _, _ = image.build_networks(image.default_config().network)
    z = encoder(torch.zeros(1, 3, PAD_MULTIPLE, 2 * PAD_MULTIPLE))
    assert z.shape[-2:] == (1, 2)


def test_networks_that_do_not_fit_the_padding_are_refused(image: ImageModality) -> None:
    with pytest.raises(UsageError):
        image.build_networks({**TINY_NETWORK, "widths": [4, 4, 4, 4, 4]})


def test_an_unknown_nonlinearity_is_refused_by_name(image: ImageModality) -> None:
    with pytest.raises(UsageError, match="generator nonlinearity 'tanh'"):
        image.build_networks({**TINY_NETWORK, "generator_nonlinearity": "tanh"})


def test_networks_with_divisive_normalization_learn_it_in_both_directions(
    image: ImageModality,
) -> None:
    network = {**TINY_NETWORK, "encoder_nonlinearity": "gdn", "generator_nonlinearity": "gdn"}
    encoder, generator, _ = image.build_networks(network)
    normalizations = [
        layer
        for network in (encoder, generator)
        for layer in network.modules()
        if isinstance(layer, DivisiveNormalization)
    ]
    assert [layer.inverse for layer in normalizations] == [False] * 4 + [True] * 4
    x = torch.rand(2, 3, 32, 32)
    (generator(encoder(x)) - x).square().mean().backward()
    assert all(layer.gamma_root.grad.abs().sum() > 0 for layer in normalizations)


def test_the_generator_alone_can_take_divisive_normalization(image: ImageModality) -> None:
    encoder, generator, _ = image.build_networks({**TINY_NETWORK, "generator_nonlinearity": "gdn"})
    assert not any(isinstance(layer, DivisiveNormalization) for layer in encoder.modules())
    assert sum(isinstance(layer, DivisiveNormalization) for layer in generator.modules()) == 4


def test_large_images_score_similarity_in_windows_close_to_the_whole(
    image: ImageModality, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows, cols = torch.meshgrid(torch.linspace(0, 6, 300), torch.linspace(0, 5, 260), indexing="ij")
    x = (0.5 + 0.4 * torch.sin(rows) * torch.cos(cols)).expand(1, 3, -1, -1).contiguous()
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    x_hat = (x + 0.05 * noise).clamp(0, 1)
    whole = image.distortion(x_hat, x)
    monkeypatch.setattr(image_modality, "SIMILARITY_WINDOW", 128)
    x_hat.requires_grad_(True)
    windowed = image.distortion(x_hat, x)
    windowed.sum().backward()
    assert windowed.item() == pytest.approx(whole.item(), rel=0.05)
    assert windowed.item() != whole.item()  # the windowed path really ran
    assert torch.isfinite(x_hat.grad).all() and x_hat.grad.abs().sum() > 0

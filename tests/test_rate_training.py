"""Rate-aware, variable-rate training: the rate in the loss, one model at several rates."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from unicomp.core.blends import blend, blend_label
from unicomp.core.calibration import (
    START_MARGIN,
    calibrate,
    calibrate_points,
    measure,
    start_points,
)
from unicomp.core.checkpoint import load_model, save_model, sha256_file
from unicomp.core.codec import Codec
from unicomp.core.coders import PER_CHANNEL
from unicomp.core.config import QuantizerConfig
from unicomp.core.data import CropDataset
from unicomp.core.entropy import EntropyTables
from unicomp.core.gains import GainedGenerator, fold_input_gain, fold_output_gain, scale_channels
from unicomp.core.points import OperatingPoint, parse_rate
from unicomp.core.quantizer import Quantizer
from unicomp.core.rate_model import ContextRateModel
from unicomp.core.trainer import GAIN_BOUND, GAIN_EXPONENT, Autoencoder, PointGains
from unicomp.errors import FormatError, ModelError


def test_the_rate_term_prices_each_element_by_its_context() -> None:
    """Elements cost what the counted context tables say, as the coder would count them."""
    rate_model = ContextRateModel(points=2, channels=1, axes=1, num_symbols=2)
    # Point 0 always sees symbol 0; point 1 sees alternating symbols.
    steady = torch.zeros(1, 1, 64, dtype=torch.long)
    alternating = (torch.arange(64) % 2).reshape(1, 1, 64)
    indices = torch.cat([steady, alternating])
    points = torch.tensor([0, 1])
    one_hot = torch.nn.functional.one_hot(indices, 2).float()
    for _ in range(300):
        bits = rate_model(one_hot, indices, points)
    lengths = rate_model.code_lengths()
    assert bits[0] < 0.1  # a symbol that never changes costs almost nothing
    # After a 0 comes a 1 and after a 1 a 0: the context makes the alternation cheap,
    # though each symbol alone is a fair coin (1 bit).
    assert bits[1] < 0.3
    context_after_zero = 0  # the preceding neighbour's index (K = 2 means "outside")
    assert lengths[1, 0, context_after_zero, 1] < 0.2 < 3 < lengths[1, 0, context_after_zero, 0]
    # The soft assignment carries the gradient: moving mass to the expensive symbol costs.
    soft = torch.full((1, 1, 64, 2), 0.5, requires_grad=True)
    rate_model.eval()
    rate_model(soft, steady, torch.tensor([0])).sum().backward()
    assert soft.grad is not None and (soft.grad[..., 1] > soft.grad[..., 0]).all()


def test_a_gain_learns_the_step_from_the_quantization_residual() -> None:
    """Tied gains see the quantizer's step under straight-through gradients (LSQ): the
    gradient of a point's log gain is the loss's gradient times the residual, so for a
    squared error -2 * sum(residual^2) per channel at gain 1; the commitment loss never
    reaches the gains."""
    x = torch.tensor([[[0.3, -0.8, 0.55]], [[0.9, -0.2, 0.1]]], requires_grad=True)
    quantizer = Quantizer(QuantizerConfig(num_centers=3))
    with torch.no_grad():
        quantizer.centers.copy_(torch.tensor([-1.0, 0.0, 1.0]))
    gains = PointGains(torch.tensor([0.01, 1.0]), channels=1, centered=False)
    with torch.no_grad():
        gains.log_latent.zero_()
    autoencoder = Autoencoder(torch.nn.Identity(), quantizer, torch.nn.Identity(), gains)
    out = autoencoder(x, "hard", torch.zeros(2, dtype=torch.long))
    ((out.z - out.quantized.detach()) ** 2).mean().backward(retain_graph=True)
    assert gains.log_latent.grad is None
    ((out.x_hat - x.detach()) ** 2).sum().backward()
    residual = x.detach() - quantizer.dequantize(quantizer.indices(x))
    expected = -2 * (residual**2).sum()
    assert float(gains.log_latent.grad[0, 0]) == pytest.approx(float(expected), rel=1e-5)
    assert float(gains.log_latent.grad[1, 0]) == 0.0  # a point not in the batch


def test_gains_folded_into_the_weights_compute_what_the_gains_did() -> None:
    torch.manual_seed(0)
    layers = (
        torch.nn.Conv1d(2, 3, 3, padding=1),
        torch.nn.LeakyReLU(0.2),
        torch.nn.Conv1d(3, 4, 1),
    )
    stack = torch.nn.Sequential(*layers)
    x = torch.randn(2, 2, 7)
    output_gain, input_gain = torch.tensor([0.5, 2.0, 3.0, 0.25]), torch.tensor([4.0, 0.5])
    with torch.no_grad():
        expected = scale_channels(stack(scale_channels(x, input_gain)), output_gain)
        fold_output_gain(stack, output_gain)
        fold_input_gain(stack, input_gain)
        assert torch.allclose(stack(x), expected, atol=1e-5)
        with pytest.raises(ValueError, match="last layer"):
            fold_output_gain(torch.nn.Sequential(layers[0], layers[1]), output_gain)


def test_points_trained_at_larger_rate_weights_code_smaller_files(
    sensor, sensor_model: Path, sensor_data: Path
) -> None:
    model = load_model(sensor_model, sensor.build_networks)
    codec = Codec(sensor, model)
    signals = [sensor.load(path) for path in sorted(sensor_data.glob("*.csv"))[:6]]
    low_weight, high_weight = (measure(codec, signals, p.label) for p in model.points)
    assert model.config.train.rate_weights[0] < model.config.train.rate_weights[1]
    assert high_weight.rate < 0.9 * low_weight.rate
    assert high_weight.distortion > low_weight.distortion
    # The point conditions both sides: a latent gain per channel before the quantizer,
    # an input gain inside the point's generator, the smaller latent gain at the
    # larger weight.
    default, other = model.points
    assert isinstance(default.generator, GainedGenerator)
    assert default.latent_gain is not None and other.latent_gain is not None
    assert (other.latent_gain < default.latent_gain).all()
    # Files of both points decode, bit-exact in their indices.
    for point in model.points:
        data, _ = codec.encode(signals[0], operating_point=point.label, effort="fast")
        header, indices = codec.decode_indices(data)
        assert codec.decode_indices(container_copy(data))[1].equal(indices)
        assert codec.decode(data).values.shape == signals[0].values.shape


def container_copy(data: bytes) -> bytes:
    """The same file, as another process would read it back."""
    return bytes(bytearray(data))


def test_the_training_log_reports_each_points_bits_and_reconstruction(sensor_model: Path) -> None:
    lines = [json.loads(line) for line in (sensor_model.parent / "log.jsonl").open()]
    hard = [line for line in lines if line["phase"] == "hard"]
    assert all({"bits", "bits_0", "bits_1"} <= set(line) for line in hard)
    assert not any("bits" in line for line in lines if line["phase"] == "float")
    # and what each point's decodes cost, from the first step
    assert all({"reconstruction_0", "reconstruction_1"} <= set(line) for line in lines)
    low_rate = [line["reconstruction_1"] - line["reconstruction_0"] for line in hard]
    assert sum(low_rate) > 0  # the point of fewer bits decodes worse


def test_calibration_starts_each_rate_from_the_trained_point_that_reaches_it(
    sensor, sensor_model: Path, sensor_data: Path, tmp_path: Path
) -> None:
    codec = Codec(sensor, load_model(sensor_model, sensor.build_networks))
    signals = [sensor.load(path) for path in sorted(sensor_data.glob("*.csv"))[:6]]
    default, other = codec.model.points
    high, low = (measure(codec, signals[:3], p.label).rate for p in (default, other))
    unit = sensor.rate_unit
    # Each label a little under what its trained point codes, with the margin that
    # leaves every file room to reach it (START_MARGIN).
    labels = [f"{high / 1.3:.3f}{unit}", f"{low / 1.3:.3f}{unit}"]
    assert low < high / 1.3 * START_MARGIN  # the other point is too close to the first
    codec.model.config = dataclasses.replace(codec.model.config, rates=labels)

    reached = calibrate_points(codec, signals, signals[:3], labels[0], log=lambda _: None)

    model = codec.model
    assert [point.label for point in model.points] == labels  # the trained points are gone
    for label in labels:
        assert 0.8 * parse_rate(label, unit) <= reached[label] <= parse_rate(label, unit)
    # The top label has one point with room above it; the lower one was tried from both
    # and kept the start that codes it with less distortion.
    top, lower = (model.point(label) for label in labels)
    assert top.latent_gain is not None and top.latent_gain.equal(default.latent_gain)
    assert top.generator is default.generator
    assert lower.latent_gain is not None
    from_default = lower.latent_gain.equal(default.latent_gain)
    chosen, rejected = (default, other) if from_default else (other, default)
    assert lower.latent_gain.equal(chosen.latent_gain) and lower.generator is chosen.generator
    kept = measure(codec, signals[:3], labels[1]).distortion
    # Saved and loaded, the model codes between its rates with blends of gained points.
    reloaded = Codec(sensor, load_model(save_model(model, tmp_path), sensor.build_networks))
    halfway = blend_label(labels[1], labels[0], 8)
    data, report = reloaded.encode(signals[4], operating_point=halfway, effort="fast")
    assert report.operating_point == halfway
    assert reloaded.decode(data).values.shape == signals[4].values.shape
    middle = math.sqrt(parse_rate(labels[0], unit) * parse_rate(labels[1], unit))
    for signal in signals:
        assert 0.97 * middle <= reloaded.encode(signal, rate=middle)[1].rate <= middle
    calibrate(codec, signals, signals[:3], labels[1], log=lambda _: None, starts=[rejected])
    assert measure(codec, signals[:3], labels[1]).distortion >= kept


def test_a_blend_of_gained_points_mixes_their_gains(sensor, sensor_model: Path) -> None:
    model = load_model(sensor_model, sensor.build_networks)
    low, high = (
        dataclasses.replace(p, label=name) for p, name in zip(model.points, "ab", strict=True)
    )
    halfway = blend(low, high, 8)
    assert low.latent_gain is not None and high.latent_gain is not None
    assert halfway.latent_gain is not None
    assert torch.allclose(halfway.latent_gain, (low.latent_gain * high.latent_gain).sqrt())
    plain = dataclasses.replace(high, latent_gain=None)
    with pytest.raises(FormatError, match="different networks"):
        blend(low, plain, 8)


def test_a_label_is_tried_from_the_lowest_trained_points_with_room_above_it() -> None:
    """A point barely above a label (weight near 0) is not tried; of those with room,
    the two lowest are (calibration keeps the better)."""
    points = [_gained_point(name, 1.0) for name in ("low", "middle", "high")]
    trained = list(zip([0.066, 0.148, 0.36], points, strict=True))

    def labels(target: float) -> list[str | None]:
        return [point.label for point in start_points(trained, target)]

    assert labels(0.05) == ["low", "middle"]  # the two lowest
    assert labels(0.06) == ["middle", "high"]  # 0.066 bpp is too close to 0.06
    assert labels(0.25) == ["high"]
    assert labels(0.5) == ["high"]  # none reaches: the top


def _gained_point(label: str, gain: float) -> OperatingPoint:
    """A point of an identity network that quantizes to integers after a latent gain
    ``gain`` and undoes it with the input gain ``1 / gain``."""
    tables = EntropyTables.from_counts(torch.ones(2, 4))
    generator = GainedGenerator(torch.nn.Identity(), channels=2)
    with torch.no_grad():
        generator.input_gain.fill_(1 / gain)
    return OperatingPoint(
        label, 0.1, tables, PER_CHANNEL, tables, generator.eval(), torch.full((2,), gain)
    )


def test_a_blend_of_points_ten_times_apart_in_gain_decodes_between_them() -> None:
    """The blend's input gain still undoes its latent gain, so its step lies between the
    points' steps: mixed linearly, the halfway generator saw its centers 3x too large."""
    signal = torch.linspace(-0.7, 0.7, 2 * 500).reshape(1, 2, 500)

    @torch.no_grad()
    def error(point: OperatingPoint) -> float:
        decoded = point.generator(point.latents(signal).round())
        return float((decoded - signal).pow(2).mean())

    coarse, fine = _gained_point("coarse", 1.0), _gained_point("fine", 10.0)
    halfway = blend(coarse, fine, 8)
    assert halfway.latent_gain is not None
    assert torch.allclose(halfway.latent_gain, torch.full((2,), math.sqrt(10.0)))
    assert error(fine) < 0.5 * error(halfway) and error(halfway) < 0.5 * error(coarse)
    # Steps 1/gain: the errors of a uniform quantizer, step^2 / 12, within 20 %.
    assert error(halfway) == pytest.approx(1 / 10 / 12, rel=0.2)
    near_fine = blend(coarse, fine, 15)
    assert error(fine) < error(near_fine) < error(halfway)


def test_a_card_whose_gains_do_not_fit_the_latent_is_refused(
    sensor, sensor_model: Path, tmp_path: Path
) -> None:
    model = load_model(sensor_model, sensor.build_networks)
    card_path = save_model(model, tmp_path)
    weights = tmp_path / f"{model.name}.safetensors"
    state = load_file(str(weights))
    card = json.loads(card_path.read_text())

    def forged(key: str, value: torch.Tensor, named: str | None = None) -> None:
        save_file({**state, key: value}, str(weights))
        points = [dict(p) for p in card["operating_points"]]
        if named is not None:
            points[1]["latent_gain"] = named
        forgery = {**card, "operating_points": points}
        forgery["weights"] = {**card["weights"], "sha256": sha256_file(weights)}
        card_path.write_text(json.dumps(forgery))

    forged("latent_gain", torch.ones(5))
    with pytest.raises(ModelError, match="latent gain is not one value per latent channel"):
        load_model(card_path, sensor.build_networks)
    forged("generator.input_gain", torch.ones(3, 2))
    with pytest.raises(ModelError, match="input gain of 'generator' is not one value per"):
        load_model(card_path, sensor.build_networks)
    forged("latent_gain", state["latent_gain"], named="latent_gain.elsewhere")
    with pytest.raises(ModelError, match="latent gain 'latent_gain.elsewhere' is not in"):
        load_model(card_path, sensor.build_networks)


def test_crops_of_large_signals_are_shown_at_many_scales() -> None:
    ramp = torch.arange(4096, dtype=torch.float32).reshape(1, 4096)
    dataset = CropDataset([ramp], [64])
    spans = []
    for seed in range(40):
        crop = dataset.sample(0, torch.Generator().manual_seed(seed), max_downscale=8.0)
        assert crop.shape == (1, 64)
        again = dataset.sample(0, torch.Generator().manual_seed(seed), max_downscale=8.0)
        assert crop.equal(again)  # a pure function of the generator, so runs resume
        spans.append(float(crop[0, -1] - crop[0, 0]))
    assert min(spans) < 100 and 300 < max(spans) < 8 * 64
    unscaled = dataset.sample(0, torch.Generator().manual_seed(0))
    assert float(unscaled[0, -1] - unscaled[0, 0]) == 63
    # A signal no larger than the crop is never scaled.
    small = CropDataset([ramp[:, :64]], [64]).sample(0, torch.Generator(), max_downscale=8.0)
    assert small.equal(ramp[:, :64])


@pytest.mark.parametrize("centered", [True, False])
def test_point_gains_start_at_their_weights_and_stay_bounded(centered: bool) -> None:
    weights = torch.tensor([0.03, 0.003, 0.3, 1.5])
    gains = PointGains(weights, channels=2, centered=centered)
    everyone = torch.arange(4)
    expected = (weights / weights.log().mean().exp()) ** -GAIN_EXPONENT
    assert torch.allclose(gains.latent(everyone)[:, 0], expected, rtol=1e-5)
    assert torch.allclose(gains.input(everyone), 1 / gains.latent(everyone))
    with torch.no_grad():
        gains.log_latent[1:].fill_(1e6)
    limit = GAIN_BOUND**2 if centered else GAIN_BOUND
    assert float(gains.latent(everyone).detach().max()) <= limit


def test_centered_gains_cannot_all_grow_together() -> None:
    """Each channel's log gains sum to zero over the points whatever the parameters, so
    the encoder's output scale has no gain to trade with."""
    gains = PointGains(torch.tensor([0.03, 0.003, 0.3]), channels=3)
    everyone = torch.arange(3)
    for raw in (gains.log_latent.detach().clone(), torch.randn(3, 3) + 2.0):
        with torch.no_grad():
            gains.log_latent.copy_(raw)
        total = gains.latent(everyone).log().sum(dim=0)
        assert torch.allclose(total, torch.zeros(3), atol=1e-5)
    gains.latent(torch.tensor([0])).sum().backward()  # the others move against it
    assert (gains.log_latent.grad[0] > 0).all() and (gains.log_latent.grad[1:] < 0).all()

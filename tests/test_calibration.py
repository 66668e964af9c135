"""Operating points calibrated so that real files meet their rate labels."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from unicomp.core import container
from unicomp.core.calibration import calibrate_points, label_rate, measure
from unicomp.core.checkpoint import load_model, save_model
from unicomp.core.codec import Codec
from unicomp.core.data import CropDataset
from unicomp.core.point_tuning import GeneratorTuning
from unicomp.errors import UsageError


def test_label_rate_reads_the_number_before_the_unit() -> None:
    assert label_rate("0.12bpp", "bpp") == 0.12
    assert label_rate("2kbps", "kbps") == 2.0
    with pytest.raises(UsageError, match="fast"):
        label_rate("fast", "kbps")


def test_calibrated_points_meet_their_labels_in_real_files(
    sensor, sensor_model: Path, sensor_data: Path, tmp_path: Path
) -> None:
    codec = Codec(sensor, load_model(sensor_model, sensor.build_networks))
    signals = [sensor.load(path) for path in sorted(sensor_data.glob("*.csv"))[:6]]
    free = measure(codec, signals, None).rate
    unit = sensor.rate_unit
    labels = [f"{0.7 * free:.3f}{unit}", f"{0.45 * free:.3f}{unit}"]
    codec.model.config = dataclasses.replace(
        codec.model.config, operating_points=dict.fromkeys(labels, 0.0)
    )

    reached = calibrate_points(codec, signals, signals[:3], labels[0])

    for label in labels:
        target = label_rate(label, unit)
        assert 0.8 * target <= reached[label] <= target
    weights = codec.model.config.operating_points
    assert 0 < weights[labels[0]] < weights[labels[1]]
    # The default point is what a file coded without naming one gets, byte for byte.
    assert codec.model.config.admm.rate_weight == weights[labels[0]]
    assert set(codec.model.point_tables) == {labels[1]}
    assert codec.encode(signals[0])[0] == codec.encode(signals[0], operating_point=labels[0])[0]
    # Every point codes with tables conditioned on neighbouring indices.
    assert set(codec.model.context_tables) == {"", labels[1]}
    header = container.unpack(codec.encode(signals[1], operating_point=labels[1])[0])[0]
    assert header.coder == f"rans16ctx:{labels[1]}"
    # Saved and loaded, the low point still decodes to what it encoded.
    card = save_model(codec.model, tmp_path)
    reloaded = Codec(sensor, load_model(card, sensor.build_networks))
    data, report = reloaded.encode(signals[1], operating_point=labels[1])
    assert report.rate < label_rate(labels[0], unit)
    assert reloaded.decode(data).values.shape == signals[1].values.shape


def test_tuned_points_decode_better_with_their_own_generators(
    sensor, sensor_model: Path, sensor_data: Path, tmp_path: Path
) -> None:
    files = sorted(sensor_data.glob("*.csv"))
    signals = [sensor.load(path) for path in files[:6]]
    dataset = CropDataset([sensor.analysis(sensor.load(p))[0] for p in files], [256])
    tuning = GeneratorTuning(dataset, steps=300, learning_rate=1e-3, log_every=100)
    codecs, training_generators = {}, {}
    for tuned in (False, True):
        codec = Codec(sensor, load_model(sensor_model, sensor.build_networks))
        training_generators[tuned] = codec.model.generator
        free = measure(codec, signals, None).rate
        labels = [f"{0.7 * free:.3f}bits/sample", f"{0.5 * free:.3f}bits/sample"]
        codec.model.config = dataclasses.replace(
            codec.model.config, operating_points=dict.fromkeys(labels, 0.0)
        )
        calibrate_points(codec, signals, signals[:3], labels[0], tuning=tuning if tuned else None)
        codecs[tuned] = codec

    tuned = codecs[True]
    assert set(tuned.model.point_generators) == {labels[1]}
    # The default point's own tuned generator replaced the training one, a tuned copy.
    training = training_generators[True].state_dict()
    default = tuned.model.generator.state_dict()
    assert tuned.model.generator is not training_generators[True]
    assert default.keys() == training.keys()
    assert any(not torch.equal(default[key], training[key]) for key in training)
    for label in labels:
        snr = {t: mean_snr(sensor, c, signals, label) for t, c in codecs.items()}
        assert snr[True] > snr[False] + 0.5, (label, snr)
    # Saved and loaded, every point decodes through its own generator, bit for bit.
    reloaded = Codec(sensor, load_model(save_model(tuned.model, tmp_path), sensor.build_networks))
    assert set(reloaded.model.point_generators) == {labels[1]}
    for label in labels:
        data = tuned.encode(signals[0], operating_point=label)[0]
        assert np.array_equal(reloaded.decode(data).values, tuned.decode(data).values)


def mean_snr(sensor, codec: Codec, signals: list, label: str) -> float:
    """Mean SNR (dB) of ``signals`` coded at ``label`` and decoded."""
    decoded = [codec.decode(codec.encode(s, operating_point=label)[0]) for s in signals]
    return float(
        np.mean([sensor.metrics(s, d)["snr_db"] for s, d in zip(signals, decoded, strict=True)])
    )

"""1-D sensor signals (CSV, one value per line) as a unicomp modality.

The signal is normalised to zero mean and unit deviation before the networks see it;
mean, scale and length travel in the .ucz header as side info, so the decoder restores
the original level and length exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from unicomp.core.config import AdmmConfig, ModelConfig, QuantizerConfig, TrainConfig
from unicomp.core.networks import (
    ConvStackSpec,
    MultiScaleDiscriminator,
    build_encoder,
    build_generator,
)
from unicomp.errors import FormatError, InputError
from unicomp.modalities.base import Networks

MAX_SAMPLES = 10_000_000
MIN_SAMPLES = 2


@dataclass(frozen=True)
class SensorSignal:
    """A sequence of readings."""

    values: np.ndarray


class SensorModality:
    """CSV sensor readings, coded by a small 1-D convolutional model."""

    name = "sensor"
    extensions = (".csv",)
    rate_unit = "bits/sample"

    def default_config(self) -> ModelConfig:
        return ModelConfig(
            name="sensor-default",
            modality=self.name,
            network={
                "widths": [16, 32],
                "latent_channels": 2,
                "stem_width": 16,
                "residual_blocks": 1,
                "discriminator_width": 8,
                "discriminator_scales": 2,
            },
            quantizer=QuantizerConfig(num_centers=8),
            # The latent search (core/search.py) on the suite's tiny trained model
            # (tests/test_admm.py): 30 straight-through steps of 0.05 rms found a 29 %
            # lower distortion than the encoder's output, 15 ADMM iterations (rho 0.05)
            # 1 %.
            admm=AdmmConfig(iterations=30),
            train=TrainConfig(
                float_steps=300,
                soft_steps=200,
                hard_steps=200,
                batch_size=8,
                crop=[256],
                adversarial_weight=0.1,
                adversarial_start=300,
                checkpoint_every=100,
                learning_rate=2e-3,
                # Rate-aware training (core/rate_model.py) at two rate weights: one
                # model, two trained operating points, the first the default.
                rate_weights=[0.003, 0.1],
            ),
        )

    def default_model(self, rate: str | None) -> str:
        """One model; the codec checks that ``rate`` lies within its calibrated range."""
        return "sensor-default"

    def load(self, path: Path) -> SensorSignal:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise InputError(f"cannot read {path} as text: {error}") from None
        values = []
        for number, line in enumerate(text.splitlines(), start=1):
            field = line.strip().split(",")[-1].strip()
            if not field:
                continue
            try:
                values.append(float(field))
            except ValueError:
                if values or number > 1:  # only the first line may be a header
                    raise InputError(f"{path}:{number}: {field!r} is not a number") from None
            if len(values) > MAX_SAMPLES:
                raise InputError(f"{path} has more than {MAX_SAMPLES} samples")
        array = np.asarray(values, dtype=np.float64)
        if array.size < MIN_SAMPLES:
            raise InputError(f"{path} holds {array.size} samples; at least {MIN_SAMPLES} needed")
        if not np.isfinite(array).all():
            raise InputError(f"{path} contains NaN or infinite values")
        return SensorSignal(array)

    def save(self, signal: SensorSignal, path: Path) -> None:
        lines = "\n".join(f"{v:.9g}" for v in signal.values)
        path.write_text(f"value\n{lines}\n", encoding="utf-8")

    def analysis(self, signal: SensorSignal) -> tuple[torch.Tensor, dict[str, int | float | str]]:
        values = signal.values
        mean, scale = float(values.mean()), float(values.std()) or 1.0
        x = torch.from_numpy((values - mean) / scale).float().unsqueeze(0)
        padded_length = math.ceil(x.shape[-1] / _STRIDE) * _STRIDE
        x = F.pad(x.unsqueeze(0), (0, padded_length - x.shape[-1]), mode="replicate")[0]
        return x, {"length": int(values.size), "mean": mean, "scale": scale}

    def synthesis(self, x: torch.Tensor, side_info: Mapping[str, Any]) -> SensorSignal:
        length, mean, scale = side_info.get("length"), side_info.get("mean"), side_info.get("scale")
        if not isinstance(length, int) or not 0 < length <= x.shape[-1]:
            raise FormatError(f"side info length {length!r} does not fit a signal of {x.shape[-1]}")
        if not isinstance(mean, float) or not isinstance(scale, float):
            raise FormatError("side info lacks the signal's mean and scale")
        values = x[0, :length].double().numpy() * scale + mean
        return SensorSignal(values)

    def build_networks(self, network: Mapping[str, Any]) -> Networks:
        spec = ConvStackSpec(
            dims=1,
            in_channels=1,
            latent_channels=network["latent_channels"],
            widths=network["widths"],
            stride=2,
            residual_blocks=network["residual_blocks"],
            stem_width=network["stem_width"],
        )
        discriminator = MultiScaleDiscriminator(
            1, 1, scales=network["discriminator_scales"], width=network["discriminator_width"]
        )
        return Networks(build_encoder(spec), build_generator(spec), discriminator)

    def distortion(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return ((x_hat - x) ** 2).flatten(1).mean(dim=1)

    def metrics(self, reference: SensorSignal, decoded: SensorSignal) -> dict[str, float]:
        error = reference.values - decoded.values
        power = float(np.mean(reference.values**2))
        noise = float(np.mean(error**2))
        snr = math.inf if noise == 0 else 10 * math.log10(max(power, 1e-300) / noise)
        return {"snr_db": snr, "rmse": math.sqrt(noise)}

    def rate(self, bits: int, signal: SensorSignal) -> float:
        return bits / signal.values.size


#: The default networks halve the length twice; inputs are padded to a multiple of this.
_STRIDE = 4

"""`make demo`: compress and decompress the bundled samples with the bundled models.

Every number printed is measured here and now. A modality without a bundled default
model says so instead of pretending; the third-party example plugin is then shown end
to end with a model trained on the spot (about half a minute on a laptop CPU).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "examples" / "samples"
sys.path.insert(0, str(ROOT / "examples" / "unicomp-plugin-example" / "src"))

from unicomp_sensor import plugin as sensor_plugin  # noqa: E402
from unicomp_sensor.synthetic import synthetic_reading  # noqa: E402

from unicomp import __version__, api  # noqa: E402
from unicomp.core.catalog import available_models  # noqa: E402
from unicomp.core.config import merge  # noqa: E402
from unicomp.core.trainer import train  # noqa: E402
from unicomp.errors import UnicompError  # noqa: E402
from unicomp.plugins.manager import build_registry, get_registry  # noqa: E402


def main() -> None:
    print(f"unicomp {__version__}")
    registry = get_registry()
    models = {path.stem for path in available_models(registry.model_dirs)}
    print(f"modalities: {', '.join(sorted(registry.modalities))}")
    print(f"bundled models: {', '.join(sorted(models)) or 'none yet'}")
    with tempfile.TemporaryDirectory() as scratch:
        extensions = {e for m in registry.modalities.values() for e in m.extensions}
        for sample in sorted(SAMPLES.glob("*")):
            if sample.suffix.lower() in extensions:
                demo_sample(sample, Path(scratch), registry, models)
        demo_plugin(Path(scratch))


def demo_sample(sample: Path, scratch: Path, registry, models: set[str]) -> None:
    """Round-trip one bundled sample through its modality's default model."""
    modality = registry.modality_for(sample)
    default = modality.default_model(None)
    if default not in models:
        print(f"{sample.name}: no bundled {modality.name} model ({default}) yet; skipped")
        return
    try:
        result = api.compress(sample, scratch / f"{sample.stem}.ucz", metrics=True)
        restored = api.decompress(result.output)
    except UnicompError as error:
        print(f"{sample.name}: {error}")
        return
    report = result.report
    quality = ", ".join(f"{k} {v:.4g}" for k, v in (result.metrics or {}).items())
    print(
        f"{sample.name}: {report.rate:.4g} {report.rate_unit} "
        f"({report.total_bits // 8} bytes), {quality}; decoded to {restored.output.name}"
    )


def demo_plugin(scratch: Path) -> None:
    """Train the example sensor modality briefly and code a reading with it."""
    print("\nthird-party plugin example (unicomp-sensor): training a small model ...")
    registry = build_registry(autoload=False, extra_plugins=[sensor_plugin])
    sensor = registry.modality("sensor")
    data = scratch / "sensor-data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for index in range(16):
        np.savetxt(data / f"reading{index}.csv", synthetic_reading(rng))
    config = merge(
        sensor.default_config(),
        {"train": {"float_steps": 200, "soft_steps": 150, "hard_steps": 150}},
    )
    card = train(sensor, config, data, scratch / "sensor-model")
    reading = scratch / "reading.csv"
    np.savetxt(reading, synthetic_reading(np.random.default_rng(99)))
    for iterations in (0, None):
        label = "encoder output only" if iterations == 0 else "with the latent search"
        result = api.compress(
            reading,
            scratch / f"reading-{label[:4]}.ucz",
            model=card,
            admm_iterations=iterations,
            metrics=True,
            registry=registry,
        )
        report = result.report
        print(
            f"reading.csv, {label}: {report.rate:.3f} {report.rate_unit} "
            f"(payload {report.payload_bits} bits, estimate {report.estimated_bits:.0f}, "
            f"fixed-length {report.fixed_length_bits:.0f}), "
            f"SNR {result.metrics['snr_db']:.2f} dB"
        )


if __name__ == "__main__":
    main()

"""Rate-distortion of the image codec on the evaluate images, beside JPEG and WebP.

    .venv/bin/python benchmarks/eval_image.py                      # RD table + timing
    .venv/bin/python benchmarks/eval_image.py --images ~/.cache/unicomp/corpus/image/train \\
        --admm-sweep                                               # search settings

The model is the default one (set UNICOMP_MODEL_PATH to evaluate another folder's).
For every operating point: bits per pixel from the real .ucz size (header
included), PSNR and MS-SSIM of the decoded image, with the latent search on and off
(``admm_iterations=0``). JPEG and WebP (Pillow) are swept over their quality settings
and interpolated (linearly in bpp) at the codec's bpp of each image; where a classic
codec cannot go that low, the cell says so instead of extrapolating. Timing is of one
768x512 photo. ``--admm-sweep`` compares search settings by quality gain per second; run
it on TRAIN images only, since that is where the model's AdmmConfig is chosen.
Results go to a JSON file in CompressAI's layout ({name, results: {bpp, psnr, ...}}).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from unicomp.core.codec import Codec
from unicomp.core.data import find_files
from unicomp.errors import InputError
from unicomp.modalities.image.io import ImageSignal
from unicomp.modalities.image.modality import RATES, ImageModality
from unicomp.plugins.manager import get_registry

sys.path.insert(0, str(Path(__file__).parent))
from train_image import typical_size  # noqa: E402

CORPUS = Path.home() / ".cache" / "unicomp" / "corpus" / "image"
DEFAULT_OUT = Path.home() / ".cache" / "unicomp" / "bench" / "image-eval.json"
QUALITIES = tuple(range(1, 96, 2))
CLASSIC = {"jpeg": "JPEG", "webp": "WEBP"}
TIMING_SIZE = (768, 512)
#: Overrides of the model's AdmmConfig compared by --admm-sweep ({} is the default).
SWEEP = (
    {"iterations": 0},
    {},
    {"inner_steps": 2, "learning_rate": 0.02, "rho": 0.2, "rho_growth": 1.12},
    {"inner_steps": 2},
    {"rho": 0.02},
    {"learning_rate": 0.5},
    {"iterations": 12, "time_budget": None},
)

Row = dict[str, float | str | None]


def classic_sweep(modality: ImageModality, signal: ImageSignal, fmt: str) -> list[Row]:
    """(bpp, psnr, ms_ssim) of a Pillow codec at every quality, sorted by bpp."""
    image = Image.fromarray(signal.pixels.squeeze(2) if signal.channels == 1 else signal.pixels)
    if fmt == "WEBP" and image.mode == "L":
        image = image.convert("RGB")
    rows = []
    for setting in QUALITIES:
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, quality=setting)
        decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert(image.mode))
        decoded_signal = ImageSignal(decoded.reshape(signal.pixels.shape[:2] + (-1,)), image.mode)
        bpp = 8 * buffer.tell() / (signal.height * signal.width)
        rows.append({"bpp": bpp, **modality.metrics(signal, decoded_signal)})
    return sorted(rows, key=lambda row: row["bpp"])


def at_rate(sweep: list[Row], bpp: float) -> Row:
    """The sweep's quality interpolated at ``bpp``; None where the codec cannot go."""
    rates = [row["bpp"] for row in sweep]
    if not rates[0] <= bpp <= rates[-1]:
        return {"psnr": None, "ms_ssim": None, "min_bpp": rates[0]}
    return {
        key: float(np.interp(bpp, rates, [row[key] for row in sweep]))
        for key in ("psnr", "ms_ssim")
    }


def evaluate(codec: Codec, signals: dict[str, ImageSignal]) -> dict[str, list[Row]]:
    """Every image at every operating point, search on and off, with the classic codecs."""
    results: dict[str, list[Row]] = {}
    modality = codec.modality
    for name, signal in signals.items():
        sweeps = {label: classic_sweep(modality, signal, f) for label, f in CLASSIC.items()}
        for point in RATES:
            for search in ("admm", "no-admm"):
                started = time.monotonic()
                data, _ = codec.encode(signal, 0 if search == "no-admm" else None, point)
                seconds = time.monotonic() - started
                bpp = 8 * len(data) / (signal.height * signal.width)
                row = {"image": name, "bpp": bpp, "seconds": seconds}
                row.update(modality.metrics(signal, codec.decode(data)))
                results.setdefault(f"unicomp-{point}-{search}", []).append(row)
                if search == "admm":
                    for label, sweep in sweeps.items():
                        classic = {"image": name, "bpp": bpp, **at_rate(sweep, bpp)}
                        results.setdefault(f"{label}@unicomp-{point}", []).append(classic)
                print(f"{name} {point} {search}: {_describe(row)}", flush=True)
    return results


def timing(codec: Codec, signal: ImageSignal) -> Row:
    """Encode (default settings and rate) and decode seconds of one image of TIMING_SIZE."""
    started = time.monotonic()
    data, report = codec.encode(signal)
    encoded = time.monotonic()
    codec.decode(data)
    return {
        "size": f"{signal.width}x{signal.height}",
        "encode_seconds": encoded - started,
        "decode_seconds": time.monotonic() - encoded,
        "admm_iterations": report.iterations,
        "bpp": report.rate,
    }


def admm_sweep(codec: Codec, signals: dict[str, ImageSignal]) -> list[Row]:
    """Distortion and seconds of each search setting at the default operating point."""
    base = codec.model.config.admm
    rows = []
    for overrides in SWEEP:
        codec.model.config.admm = dataclasses.replace(base, **overrides)
        values, seconds, rates = [], [], []
        for signal in signals.values():
            _, report = codec.encode(signal)
            values.append(report.distortion)
            seconds.append(report.seconds)
            rates.append(report.rate)
        row = {
            "settings": json.dumps(overrides),
            "distortion": statistics.fmean(values),
            "bpp": statistics.fmean(rates),
            "seconds": statistics.fmean(seconds),
        }
        rows.append(row)
        print(_describe(row), flush=True)
    codec.model.config.admm = base
    return rows


def summary(results: dict[str, list[Row]]) -> dict[str, Row]:
    """Mean bpp, PSNR and MS-SSIM per codec (None if any image could not be reached)."""
    table = {}
    for name, rows in results.items():
        means: Row = {}
        for key in ("bpp", "psnr", "ms_ssim", "seconds"):
            values = [row.get(key) for row in rows if key in row]
            if values:
                means[key] = None if None in values else statistics.fmean(values)
        means["images"] = len(rows)
        means["unreachable"] = sum(row.get("psnr") is None for row in rows)
        table[name] = means
    return table


def load_signals(modality: ImageModality, folder: Path) -> dict[str, ImageSignal]:
    signals = {}
    for path in find_files(modality, folder):
        try:
            signal = modality.load(path)
            modality.analysis(signal)
        except InputError as error:
            print(f"left out {path.name}: {error}", flush=True)
            continue
        signals[path.stem] = signal
    return signals


def timing_photo(modality: ImageModality) -> ImageSignal:
    """A 768x512 RGB photo: a train photo scaled and centre-cropped to that size."""
    signal = modality.load(CORPUS / "train" / "Garden.jpg")
    fitted = ImageOps.fit(Image.fromarray(signal.pixels), TIMING_SIZE, Image.Resampling.LANCZOS)
    return ImageSignal(np.asarray(fitted), "RGB")


def _describe(row: Row) -> str:
    return " ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=Path, default=CORPUS / "evaluate", help="image folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--admm-sweep", action="store_true", help="compare search settings")
    parser.add_argument("--limit", type=int, help="use only this many images, spread evenly")
    parser.add_argument("--typical", action="store_true", help="shrink to long side 768 px")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    modality = ImageModality()
    codec = Codec.from_pretrained(modality.default_model(None), get_registry())
    signals = load_signals(modality, args.images)
    if args.limit:
        names = list(signals)[:: max(1, len(signals) // args.limit)][: args.limit]
        signals = {name: signals[name] for name in names}
    if args.typical:
        signals = {name: typical_size(signal) for name, signal in signals.items()}
    if args.admm_sweep:
        output = {
            "name": codec.name,
            "images": str(args.images),
            "sweep": admm_sweep(codec, signals),
        }
    else:
        results = evaluate(codec, signals)
        table = summary(results)
        for name, row in table.items():
            print(f"{name}: {_describe(row)}", flush=True)
        speed = timing(codec, timing_photo(modality))
        print(f"timing: {_describe(speed)}", flush=True)
        output = {
            "name": codec.name,
            "description": f"{codec.name} at {', '.join(RATES)} on {args.images} "
            "beside Pillow JPEG/WebP",
            "threads": args.threads,
            "summary": table,
            "results": {
                name: {
                    key: [row.get(key) for row in rows]
                    for key in ("image", "bpp", "psnr", "ms_ssim")
                }
                for name, rows in results.items()
            },
            "timing": speed,
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(output, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

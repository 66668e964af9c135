"""Speech rate and quality on the evaluate split: unicomp beside Codec2 and Opus.

    .venv/bin/python benchmarks/eval_speech.py [--model speech-v1] [--json out.json]

Every file of ``corpus/speech/evaluate`` is coded by unicomp at each operating point with
the latent search on and off (``admm_iterations=0``), by Codec2 (3200, 2400, 1200, 700C,
on its 8 kHz mix) and by Opus (6 and 8 kbit/s), and passed through the decoder's
signal processing alone (the magnitude-only ceiling: exact log-mel → NNLS → PGHI → GL).
Rates come from the real file sizes (unicomp: .ucz with header; Codec2: the raw bit
file; Opus: the whole Ogg file) over the duration; PESQ-WB, PESQ-NB and STOI from
``SpeechModality.metrics``. Codec2 output lags its input by about 20 ms; the lag is found
by cross-correlation (0–60 ms) and removed before scoring. Times are wall-clock on this
machine with one torch thread. ``--split train`` runs the same on 10 s train clips, which
is where encoder settings may be tuned; never tune on the evaluate rows.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from unicomp.api import load_codec
from unicomp.core.codec import Codec
from unicomp.core.config import merge
from unicomp.modalities.speech.modality import SpeechModality, SpeechSignal

sys.path.insert(0, str(Path(__file__).parent))
from train_speech import CORPUS, DEFAULT_DATA, train_clips  # noqa: E402

EVALUATE = CORPUS / "speech" / "evaluate"
CODEC2_MODES = ("3200", "2400", "1200", "700C")
OPUS_KBPS = (6, 8)
MAX_LAG_SECONDS = 0.06
METRICS = ("kbps", "pesq_wb", "pesq_nb", "stoi")

Row = dict[str, float]


def unicomp_rows(
    codec: Codec, signal: SpeechSignal, points: list[str], timings: dict[str, list[float]]
) -> dict[str, Row]:
    """Scores of every operating point, latent search on and off."""
    rows = {}
    for point in points:
        for label, iterations in (("ADMM", None), ("no ADMM", 0)):
            started = time.perf_counter()
            data, report = codec.encode(signal, iterations, point)
            encoded = time.perf_counter()
            decoded = codec.decode(data)
            finished = time.perf_counter()
            name = f"unicomp {point} {label}"
            timings[f"{name} encode"].append(encoded - started)
            timings[f"{name} decode"].append(finished - encoded)
            rows[name] = {"kbps": report.rate, **codec.modality.metrics(signal, decoded)}
    return rows


def ceiling_row(modality: SpeechModality, signal: SpeechSignal) -> Row:
    """The decoder's signal processing on the exact log-mel: what no model can beat."""
    x, side_info = modality.analysis(signal)
    return {"kbps": math.nan, **modality.metrics(signal, modality.synthesis(x, side_info))}


def codec2_row(modality: SpeechModality, signal: SpeechSignal, mode: str, scratch: Path) -> Row:
    """Codec2 at ``mode`` on the 8 kHz mix, its lag removed."""
    raw_in, bits, raw_out = scratch / "in.raw", scratch / "c2.bit", scratch / "out.raw"
    pcm = np.clip(signal.mono(8000) * 32768, -32768, 32767).astype("<i2")
    raw_in.write_bytes(pcm.tobytes())
    _run(["c2enc", mode, str(raw_in), str(bits)])
    _run(["c2dec", mode, str(bits), str(raw_out)])
    decoded = np.frombuffer(raw_out.read_bytes(), "<i2").astype(np.float64) / 32768
    decoded = _remove_lag(signal.mono(8000), decoded)
    kbps = 8 * bits.stat().st_size / signal.duration / 1000
    return {"kbps": kbps, **modality.metrics(signal, _as_signal(decoded, 8000))}


def opus_row(modality: SpeechModality, signal: SpeechSignal, kbps: int, scratch: Path) -> Row:
    """Opus (opus-tools, VBR, speech at ``kbps``); the rate counts the whole Ogg file."""
    rate = 16000 if signal.sample_rate >= 16000 else 8000
    wav_in, packed, wav_out = scratch / "in.wav", scratch / "o.opus", scratch / "out.wav"
    sf.write(str(wav_in), signal.mono(rate), rate, subtype="PCM_16")
    _run(["opusenc", "--quiet", "--speech", "--bitrate", str(kbps), str(wav_in), str(packed)])
    _run(["opusdec", "--quiet", "--rate", str(rate), str(packed), str(wav_out)])
    decoded, _ = sf.read(str(wav_out), dtype="float64", always_2d=True)
    real_kbps = 8 * packed.stat().st_size / signal.duration / 1000
    return {"kbps": real_kbps, **modality.metrics(signal, _as_signal(decoded[:, 0], rate))}


def evaluate(
    codec: Codec, signals: dict[str, SpeechSignal], points: list[str], baselines: bool
) -> tuple[dict[str, dict[str, Row]], dict[str, list[float]]]:
    """Per method, per file scores; and per-method timings (seconds per file)."""
    modality = codec.modality
    results: dict[str, dict[str, Row]] = defaultdict(dict)
    timings: dict[str, list[float]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        for name, signal in signals.items():
            print(f"{name} ({signal.duration:.1f} s)", flush=True)
            rows = unicomp_rows(codec, signal, points, timings)
            rows["magnitude-only ceiling"] = ceiling_row(modality, signal)
            if baselines:
                for mode in CODEC2_MODES:
                    rows[f"Codec2 {mode}"] = codec2_row(modality, signal, mode, scratch)
                for kbps in OPUS_KBPS:
                    rows[f"Opus {kbps}k"] = opus_row(modality, signal, kbps, scratch)
            for method, row in rows.items():
                results[method][name] = row
    return results, timings


def summary(
    results: dict[str, dict[str, Row]],
    timings: dict[str, list[float]],
    durations: dict[str, float],
) -> list[dict[str, float | str]]:
    """Mean of every metric per method (NaN PESQ scores skipped), pooled rate and speed.

    The mean rate weighs a 1 s file's header like a 100 s file's; the pooled rate
    (all bits over all seconds) is what a long recording would cost.
    """
    table = []
    seconds = sum(durations.values())
    for method, per_file in results.items():
        line: dict[str, float | str] = {"method": method}
        for metric in METRICS:
            values = [row[metric] for row in per_file.values() if not math.isnan(row[metric])]
            line[metric] = statistics.mean(values) if values else math.nan
        bits = sum(row["kbps"] * durations[name] for name, row in per_file.items())
        line["kbps_pooled"] = bits / seconds
        if f"{method} encode" in timings:
            line["encode_s_per_s"] = sum(timings[f"{method} encode"]) / seconds
            line["decode_x_realtime"] = seconds / sum(timings[f"{method} decode"])
        table.append(line)
    return table


def print_table(table: list[dict[str, float | str]]) -> None:
    columns = ["kbps", "kbps_pooled", *METRICS[1:], "encode_s_per_s", "decode_x_realtime"]
    print(f"{'method':<26}" + "".join(f"{c:>12}" for c in columns))
    for line in table:
        cells = "".join(f"{_cell(line.get(c, math.nan)):>12}" for c in columns)
        print(f"{line['method']:<26}{cells}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="model name or card (default: speech's)")
    parser.add_argument("--split", choices=("evaluate", "train"), default="evaluate")
    parser.add_argument("--points", nargs="*", help="operating points (default: all)")
    parser.add_argument("--admm", nargs="*", default=[], help="AdmmConfig overrides k=v")
    parser.add_argument("--no-baselines", action="store_true", help="skip Codec2 and Opus")
    parser.add_argument("--json", type=Path, help="write per-file and mean results here")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    codec = load_codec(args.model, "speech")
    if args.admm:
        overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.admm)}
        codec.model.config = merge(codec.model.config, {"admm": overrides})
    points = args.points or sorted(codec.model.config.operating_points)
    signals = _signals(codec.modality, args.split)
    durations = {name: signal.duration for name, signal in signals.items()}
    seconds = sum(durations.values())
    results, timings = evaluate(codec, signals, points, not args.no_baselines)
    table = summary(results, timings, durations)
    print(
        f"\n{codec.name} on {args.split} ({len(signals)} files, {seconds:.1f} s); "
        f"admm {dataclasses.asdict(codec.model.config.admm)}"
    )
    print_table(table)
    if args.json is not None:
        payload = {"model": codec.name, "split": args.split, "summary": table, "files": results}
        args.json.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    return 0


def _signals(modality: SpeechModality, split: str) -> dict[str, SpeechSignal]:
    if split == "train":
        return {f"train clip {i}": clip for i, clip in enumerate(train_clips(DEFAULT_DATA))}
    return {path.name: modality.load(path) for path in sorted(EVALUATE.glob("*.wav"))}


def _as_signal(wave: np.ndarray, rate: int) -> SpeechSignal:
    return SpeechSignal(wave[:, None].astype(np.float32), rate)


def _remove_lag(reference: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """``decoded`` advanced by its lag behind ``reference`` and cut/padded to its length."""
    max_lag = int(MAX_LAG_SECONDS * 8000)
    count = min(len(reference), len(decoded)) - max_lag
    scores = [np.dot(reference[:count], decoded[k : k + count]) for k in range(max_lag)]
    lag = int(np.argmax(scores))
    shifted = decoded[lag:]
    return np.pad(shifted[: len(reference)], (0, max(0, len(reference) - len(shifted))))


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()}")


def _cell(value: float | str) -> str:
    return value if isinstance(value, str) else f"{value:.3f}"


if __name__ == "__main__":
    sys.exit(main())

"""Train the default speech model (speech-v1) on the corpus's train split, resumably.

    nohup .venv/bin/python benchmarks/train_speech.py --resume \
        > ~/.cache/unicomp/runs/speech-v1.log 2>&1 &
    .venv/bin/python benchmarks/train_speech.py --export unicomp/weights

``--export`` takes the run's latest model, calibrates the rate weight and entropy tables
of every operating point ("2kbps", "1kbps") so that the mean real bitrate (header
included) of 10 s clips cut from the *train* split meets the label, and writes weights
and card there.

The seed is fixed and the batch of every step is a pure function of (seed, step), so a
run stopped at any point and restarted with ``--resume`` continues exactly where its
last checkpoint (every ``checkpoint_every`` steps) left off; the run folder always holds
the latest model and its card. One torch thread: the machine is shared, and on 2 busy
cores more threads made small convolutions slower, not faster.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

from unicomp.core.calibration import calibrate_points
from unicomp.core.checkpoint import load_model, save_model
from unicomp.core.codec import Codec
from unicomp.core.config import load_overrides, merge
from unicomp.core.data import CropDataset, find_files
from unicomp.core.trainer import Trainer, print_every
from unicomp.modalities.speech.modality import (
    DEFAULT_RATE,
    SAMPLE_RATE,
    SpeechModality,
    SpeechSignal,
)

CORPUS = Path.home() / ".cache" / "unicomp" / "corpus"
DEFAULT_DATA = CORPUS / "speech" / "train"
DEFAULT_OUT = Path.home() / ".cache" / "unicomp" / "runs" / "speech-v1"
#: Calibration material: this many 10 s clips per language folder of the train split.
CLIPS_PER_FOLDER = 1
CLIP_SECONDS = 10.0
#: Telephone audio is 8 kHz: an 8 kHz copy of every Nth prompt teaches the model that
#: an empty upper band is to be kept empty, not filled in.
NARROWBAND_EVERY = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="training speech folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="run folder")
    parser.add_argument("--config", type=Path, help="TOML overrides of the default config")
    parser.add_argument("--resume", action="store_true", help="continue from the run folder")
    parser.add_argument("--stop-at", type=int, help="stop after this many steps in total")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--export", type=Path, help="calibrate the run's model, write it here")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    modality = SpeechModality()
    config = modality.default_config()
    if args.config is not None:
        config = merge(config, load_overrides(args.config))
    if args.export is not None:
        export(modality, args.out / f"{config.name}.json", args.data, args.export)
        return 0
    command = shlex.join(["python", "benchmarks/train_speech.py", *sys.argv[1:]])
    dataset = training_set(modality, args.data, config.train.crop)
    card = {
        "training": {
            "command": command,
            "data": f"benchmarks/corpus.py speech/train ({args.data}): every prompt, "
            f"plus an 8 kHz copy of 1 in {NARROWBAND_EVERY} ({len(dataset)} items)",
        }
    }
    print(f"training {config.name} into {args.out} ({config.train.total_steps} steps)", flush=True)
    trainer = Trainer(modality, config, dataset, args.out, card=card)
    if args.resume and trainer.resume():
        print(f"resumed at step {trainer.step}", flush=True)
    card_path = trainer.run(stop_at=args.stop_at, on_step=print_every(config.train.log_every))
    print(f"done: {card_path or args.out}", flush=True)
    return 0


def training_set(modality: SpeechModality, data_dir: Path, crop: list[int]) -> CropDataset:
    """Every prompt of ``data_dir`` as analysed, plus band-limited (8 kHz) copies of some."""
    tensors = []
    for index, path in enumerate(find_files(modality, data_dir)):
        signal = modality.load(path)
        tensors.append(modality.analysis(signal)[0])
        if index % NARROWBAND_EVERY == 0:
            tensors.append(modality.analysis(narrowband(signal))[0])
    return CropDataset(tensors, crop)


def narrowband(signal: SpeechSignal) -> SpeechSignal:
    """The signal as an 8 kHz recording (telephone band) would carry it."""
    return SpeechSignal(signal.mono(8000)[:, None], 8000)


def train_clips(data_dir: Path, per_folder: int = CLIPS_PER_FOLDER) -> list[SpeechSignal]:
    """10 s clips of consecutive prompts (seeded order) from each folder of the train split,
    each also as an 8 kHz copy: inputs come at both bandwidths and code at different rates.
    """
    modality, clips, length = SpeechModality(), [], int(CLIP_SECONDS * SAMPLE_RATE)
    for folder in sorted(p for p in data_dir.iterdir() if p.is_dir()):
        files = sorted(folder.rglob("*.wav"))
        random.Random(0).shuffle(files)
        pieces: list[np.ndarray] = []
        for path in files:
            pieces.append(modality.load(path).mono(SAMPLE_RATE))
            if sum(len(p) for p in pieces) >= length * per_folder:
                break
        wave = np.concatenate(pieces).astype(np.float32)
        clips += [
            SpeechSignal(wave[start : start + length, None], SAMPLE_RATE)
            for start in range(0, len(wave) - length + 1, length)
        ]
    return clips + [narrowband(clip) for clip in clips]


def export(modality: SpeechModality, card_path: Path, data_dir: Path, target_dir: Path) -> None:
    """Calibrate every operating point on train clips and write the model to ``target_dir``.

    The latent search settings are the current defaults (tuned on train clips), not
    those the run started with.
    """
    codec = Codec(modality, load_model(card_path, modality.build_networks))
    defaults = modality.default_config()
    codec.model.config = dataclasses.replace(
        codec.model.config, admm=defaults.admm, operating_points=defaults.operating_points
    )
    clips = train_clips(data_dir)
    print(f"calibrating on {len(clips)} train clips", flush=True)
    reached = calibrate_points(codec, clips, clips, DEFAULT_RATE)
    calibration = {
        "data": f"{len(clips)} clips of {CLIP_SECONDS:g} s from {data_dir} (train split; "
        "half are 8 kHz copies)",
        "mean_kbps": {label: round(rate, 4) for label, rate in reached.items()},
        "command": shlex.join(["python", "benchmarks/train_speech.py", *sys.argv[1:]]),
    }
    path = save_model(codec.model, target_dir, {"calibration": calibration})
    print(f"wrote {path}: {codec.model.config.operating_points}", flush=True)


if __name__ == "__main__":
    sys.exit(main())

"""Launched by torchrun from test_trainer.py: a tiny DDP training run.

``plain``: each rank writes the sha256 of its final weights, so the test can check that
DistributedDataParallel kept the replicas identical. ``elastic``: the same run through
:func:`unicomp.core.trainer.train`, whose rank 0 dies at step ``DIE_AT`` of the first
attempt; torchrun (``--max-restarts``) starts the job again, and it must resume from the
last checkpoint on its own. ``spike``: rank 0 wrecks its generator at step ``WRECK_AT``;
the other rank's loss stays calm, yet both must roll back together and end alike.
"""

from __future__ import annotations

import hashlib
import os
import sys
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples/unicomp-plugin-example/src"))

from unicomp_sensor.modality import SensorModality  # noqa: E402

from unicomp.core.config import ModelConfig, merge  # noqa: E402
from unicomp.core.data import CropDataset  # noqa: E402
from unicomp.core.trainer import StepReport, Trainer, process_group, train  # noqa: E402

#: The step after which rank 0 of the first attempt dies: past the checkpoint at step 6.
DIE_AT = 9
#: The step after which rank 0 wrecks its generator: past the spike detector's warm-up
#: and the checkpoint at step 20.
WRECK_AT = 25


def config(modality: SensorModality) -> ModelConfig:
    return merge(
        modality.default_config(),
        {
            "train": {
                "float_steps": 6,
                "soft_steps": 6,
                "hard_steps": 6,
                "adversarial_start": 3,
                "checkpoint_every": 6,
                "log_every": 1,
                "batch_size": 4,
                # Steered: the controllers' state must agree across ranks and resume.
                "rate_targets": [2.0, 0.5],
            }
        },
    )


def plain(data_dir: Path, out_dir: Path, spike: bool = False) -> None:
    modality = SensorModality()
    settings = config(modality)
    if spike:
        phases = {"float_steps": 30, "soft_steps": 3, "hard_steps": 3, "checkpoint_every": 10}
        settings = merge(settings, {"train": {**phases, "adversarial_start": 100}})
    dataset = CropDataset.from_folder(modality, data_dir, settings.train.crop)
    with process_group() as distributed:
        trainer = Trainer(modality, settings, dataset, out_dir, distributed)
        wrecked = []

        def wreck_once(report: StepReport) -> None:  # called on rank 0 only
            if spike and report.step == WRECK_AT and not wrecked:
                wrecked.append(report.step)
                with torch.no_grad():
                    for parameter in trainer.autoencoder.generator.parameters():
                        parameter.mul_(100.0)

        trainer.run(on_step=wreck_once)
    digest = hashlib.sha256()
    for name in ("encoder", "generator", "quantizer", "gains", "steering"):
        state = getattr(trainer.autoencoder, name).state_dict()
        for key in sorted(state):
            digest.update(f"{name}.{key}".encode() + state[key].numpy().tobytes())
    first_batch = trainer.schedule.batch(0)
    (out_dir / f"rank{distributed.rank}.txt").write_text(
        f"{distributed.world_size} {digest.hexdigest()} {float(first_batch.sum()):.6f}\n"
    )


def elastic(data_dir: Path, out_dir: Path) -> None:
    attempt = int(os.environ["TORCHELASTIC_RESTART_COUNT"])

    def die_once(report: StepReport) -> None:  # called on rank 0 only
        if attempt == 0 and report.step == DIE_AT:
            os._exit(1)

    modality = SensorModality()
    train(modality, config(modality), data_dir, out_dir, on_step=die_once)
    with (out_dir / "attempts.txt").open("a") as log:
        log.write(f"{os.environ['RANK']} {attempt}\n")


if __name__ == "__main__":
    torch.set_num_threads(1)
    mode = {"plain": plain, "elastic": elastic, "spike": partial(plain, spike=True)}[sys.argv[1]]
    mode(Path(sys.argv[2]), Path(sys.argv[3]))

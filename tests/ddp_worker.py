"""Launched by torchrun from test_trainer.py: a tiny DDP training run.

Each rank writes the sha256 of its final weights, so the test can check that
DistributedDataParallel kept the replicas identical.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples/unicomp-plugin-example/src"))

from unicomp_sensor.modality import SensorModality  # noqa: E402

from unicomp.core.config import merge  # noqa: E402
from unicomp.core.data import CropDataset  # noqa: E402
from unicomp.core.trainer import Trainer, process_group  # noqa: E402


def main(data_dir: Path, out_dir: Path) -> None:
    torch.set_num_threads(1)
    modality = SensorModality()
    config = merge(
        modality.default_config(),
        {
            "train": {
                "float_steps": 6,
                "soft_steps": 6,
                "hard_steps": 6,
                "adversarial_start": 3,
                "checkpoint_every": 6,
                "batch_size": 4,
            }
        },
    )
    dataset = CropDataset.from_folder(modality, data_dir, config.train.crop)
    with process_group() as distributed:
        trainer = Trainer(modality, config, dataset, out_dir, distributed)
        trainer.run()
    digest = hashlib.sha256()
    for name in ("encoder", "generator", "quantizer"):
        state = getattr(trainer.autoencoder, name).state_dict()
        for key in sorted(state):
            digest.update(f"{name}.{key}".encode() + state[key].numpy().tobytes())
    first_batch = trainer.schedule.batch(0)
    (out_dir / f"rank{distributed.rank}.txt").write_text(
        f"{distributed.world_size} {digest.hexdigest()} {float(first_batch.sum()):.6f}\n"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))

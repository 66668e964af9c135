"""Training data: every file a modality reads under a folder, served as random crops.

Crops are drawn from a generator seeded by (seed, step, rank, slot), and the item order
comes from a seeded DistributedSampler, so the batch of any step can be recomputed:
that is what makes an interrupted run resume exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, DistributedSampler

from unicomp.core.modality import Modality
from unicomp.errors import InputError

MAX_SEED_STREAMS = 1 << 20


def find_files(modality: Modality, data_dir: Path) -> list[Path]:
    """All files under ``data_dir`` the modality reads, in a stable order."""
    if not data_dir.is_dir():
        raise InputError(f"training data folder {data_dir} does not exist")
    files = sorted(
        p for p in data_dir.rglob("*") if p.is_file() and p.suffix.lower() in modality.extensions
    )
    if not files:
        raise InputError(
            f"no {modality.name} files ({' '.join(modality.extensions)}) under {data_dir}"
        )
    return files


class CropDataset(Dataset):
    """Analysed signals held in memory; an item is a random crop of fixed extent."""

    def __init__(
        self,
        tensors: Sequence[torch.Tensor],
        crop: Sequence[int],
        excluded: Mapping[str, str] | None = None,
    ) -> None:
        if not tensors:
            raise InputError("the training set is empty")
        self.tensors = list(tensors)
        self.crop = list(crop)
        #: Files of the folder the modality refused, by path within it: why.
        self.excluded = dict(excluded or {})

    @classmethod
    def from_folder(cls, modality: Modality, data_dir: Path, crop: Sequence[int]) -> CropDataset:
        """Load and analyse every file of the modality under ``data_dir``. A file the
        modality refuses (a photo with transparency, say) is left out and named in
        :attr:`excluded` with the reason, rather than ending the run; a folder with no
        usable file is an InputError."""
        tensors, excluded = [], {}
        for path in find_files(modality, data_dir):
            try:
                tensors.append(modality.analysis(modality.load(path))[0])
            except InputError as error:
                excluded[str(path.relative_to(data_dir))] = str(error)
        if not tensors:
            first = next(iter(excluded.items()))
            raise InputError(
                f"no usable {modality.name} file under {data_dir} ({': '.join(first)})"
            )
        return cls(tensors, crop, excluded)

    def __len__(self) -> int:
        return len(self.tensors)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.sample(index, torch.Generator().manual_seed(index))

    def sample(
        self, index: int, generator: torch.Generator, max_downscale: float = 1.0
    ) -> torch.Tensor:
        """A crop of item ``index`` at a position drawn from ``generator``.

        With ``max_downscale`` > 1 the crop is first taken over a region up to that many
        times larger per axis (the factor log-uniform, and at most what the item's size
        allows), then shrunk to the crop's extent with an antialiased filter: a large
        photo is then seen at the scales a user's photos have, not only as 128-pixel
        details of a 20-megapixel original.
        """
        x = _pad_to(self.tensors[index], self.crop)
        axes = range(x.dim() - len(self.crop), x.dim())
        room = min(x.shape[axis] / size for axis, size in zip(axes, self.crop, strict=True))
        largest = min(max_downscale, room)
        factor = 1.0
        if largest > 1.0:
            draw = float(torch.rand((), generator=generator))
            factor = largest**draw
        region = [
            min(x.shape[a], round(size * factor)) for a, size in zip(axes, self.crop, strict=True)
        ]
        for axis, size in zip(axes, region, strict=True):
            start = int(torch.randint(0, x.shape[axis] - size + 1, (1,), generator=generator))
            x = x.narrow(axis, start, size)
        if region != self.crop:
            x = _shrink(x, self.crop)
        return x.contiguous()


class BatchSchedule:
    """Which crops make up the batch of a given step, for one rank of a run."""

    def __init__(
        self,
        dataset: CropDataset,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        max_downscale: float = 1.0,
    ) -> None:
        self.dataset = dataset
        self.max_downscale = max_downscale
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.sampler: DistributedSampler[int] = DistributedSampler(
            dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed
        )
        self.steps_per_epoch = max(1, -(-len(self.sampler) // batch_size))

    def batch(self, step: int) -> torch.Tensor:
        """The (batch, channels, *crop) tensor for ``step``, the same on every call."""
        epoch, offset = divmod(step, self.steps_per_epoch)
        self.sampler.set_epoch(epoch)
        order = list(self.sampler)
        picks = [
            order[(offset * self.batch_size + slot) % len(order)] for slot in range(self.batch_size)
        ]
        crops = []
        for slot, index in enumerate(picks):
            stream = ((self.seed * MAX_SEED_STREAMS + step) * 64 + self.rank) * 1024 + slot
            generator = torch.Generator().manual_seed(stream)
            crops.append(self.dataset.sample(index, generator, self.max_downscale))
        return torch.stack(crops)


def _shrink(x: torch.Tensor, extent: Sequence[int]) -> torch.Tensor:
    """``x`` (channels, *axes) resized to ``extent`` with an antialiased linear filter
    (torch offers one for 2-D only, so a 1-D signal is handled as an image one row high)."""
    if len(extent) == 1:
        return _shrink(x.unsqueeze(-2), [1, *extent]).squeeze(-2)
    resized = F.interpolate(
        x.unsqueeze(0), size=list(extent), mode="bilinear", antialias=True, align_corners=False
    )
    return resized.squeeze(0)


def _pad_to(x: torch.Tensor, crop: Sequence[int]) -> torch.Tensor:
    """Replicate-pad the trailing axes of ``x`` up to at least ``crop``."""
    missing = [max(0, size - x.shape[x.dim() - len(crop) + i]) for i, size in enumerate(crop)]
    if not any(missing):
        return x
    padding: list[int] = []
    for amount in reversed(missing):
        padding += [0, amount]
    return F.pad(x.unsqueeze(0), padding, mode="replicate").squeeze(0)

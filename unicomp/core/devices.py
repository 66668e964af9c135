"""Where tensors live and in which precision the trainer computes.

Every command takes ``--device auto|cpu|cuda|cuda:N`` (``auto``: CUDA when present).
Under torchrun a bare ``cuda`` means this rank's own GPU, ``cuda:LOCAL_RANK``, and the
process group talks NCCL between GPUs and gloo between CPUs. Precision is ``fp32`` or
``bf16``; bf16 runs the networks under autocast, while losses, the quantizer and the
index statistics stay in float32 or wider.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from typing import Literal

import torch

from unicomp.errors import UsageError

Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16")
DEVICE_HELP = "auto (CUDA when present), cpu, cuda or cuda:N"
_SPEC = re.compile(r"(auto|cpu|cuda)(?::(\d+))?")


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """The device ``spec`` names, checked against this machine; ``cuda`` alone is this
    rank's GPU under torchrun (``cuda:LOCAL_RANK``), else the first."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = (spec or "auto").strip().lower()
    match = _SPEC.fullmatch(text)
    if match is None or (match.group(2) is not None and match.group(1) != "cuda"):
        raise UsageError(f"unknown device {spec!r}: use {DEVICE_HELP}")
    kind, index = match.group(1), match.group(2)
    if kind == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        kind = "cuda"
    if kind != "cuda":
        return torch.device(kind)
    if not torch.cuda.is_available():
        raise UsageError(f"device {spec!r} asked for, but torch sees no CUDA GPU here")
    number = int(index) if index is not None else local_rank()
    if number >= torch.cuda.device_count():
        raise UsageError(
            f"device cuda:{number} asked for, but torch sees {torch.cuda.device_count()} GPU(s)"
        )
    return torch.device("cuda", number)


def local_rank() -> int:
    """This process's rank on its node under torchrun (0 otherwise)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def process_group_backend(device: torch.device) -> str:
    """NCCL between GPUs, gloo between CPUs."""
    return "nccl" if device.type == "cuda" else "gloo"


def check_precision(precision: str, device: torch.device) -> Precision:
    """``precision`` if ``device`` computes in it; a UsageError otherwise."""
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}: use {' or '.join(PRECISIONS)}")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UsageError(f"{device} has no bf16 arithmetic: use --precision fp32")
    return "bf16" if precision == "bf16" else "fp32"


@contextlib.contextmanager
def autocast(device: torch.device, precision: Precision) -> Iterator[None]:
    """Run the enclosed network passes in ``precision`` (a no-op for fp32)."""
    if precision == "fp32" or device.type not in ("cuda", "cpu"):
        yield
        return
    with torch.autocast(device.type, dtype=torch.bfloat16):
        yield

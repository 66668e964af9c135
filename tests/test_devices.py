"""Device and precision choices: what this machine has is used, what it lacks is refused
with one clear line. The CUDA paths themselves run in benchmarks/gpu_smoke.sh."""

from __future__ import annotations

import pytest
import torch

from unicomp.core.devices import check_precision, process_group_backend, resolve_device
from unicomp.errors import UsageError


def test_names_resolve_to_devices() -> None:
    cpu = torch.device("cpu")
    assert resolve_device("cpu") == resolve_device(" CPU ") == resolve_device(cpu) == cpu
    expected = torch.device("cuda", 0) if torch.cuda.is_available() else cpu
    assert resolve_device("auto") == resolve_device(None) == expected
    assert process_group_backend(cpu) == "gloo"
    assert process_group_backend(torch.device("cuda", 1)) == "nccl"


@pytest.mark.parametrize("name", ["gpu", "cpu:1", "cuda:x", "auto:0", "cuda0"])
def test_unknown_device_names_are_refused(name: str) -> None:
    with pytest.raises(UsageError, match="unknown device"):
        resolve_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_a_usage_error(cli) -> None:
    with pytest.raises(UsageError, match="sees no CUDA GPU"):
        resolve_device("cuda:0")
    result = cli("decompress", "missing.ucz", "--device", "cuda")
    assert result.returncode == 2
    message = "error: device 'cuda' asked for, but torch sees no CUDA GPU here"
    assert result.stderr.strip() == message


def test_precisions() -> None:
    cpu = torch.device("cpu")
    assert check_precision("bf16", cpu) == "bf16" and check_precision("fp32", cpu) == "fp32"
    with pytest.raises(UsageError, match="unknown precision 'fp16'"):
        check_precision("fp16", cpu)

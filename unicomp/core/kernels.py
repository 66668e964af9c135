"""Pin the CPU kernels that decide a decoded signal's samples, before torch chooses them.

Floating-point results depend on the code path a library picks for the CPU it finds:
oneDNN's convolutions, ATen's vectorised loops, MKL's matrix products and FFTs and
numpy's OpenBLAS each have AVX2 and AVX-512 variants that round differently, so the
same file would decode to different samples on different machines. The decoding
contract (docs/format.md) promises identical samples on every x86-64 CPU with AVX2 or
newer, so on such a CPU each library is capped at the same path: oneDNN and ATen at
AVX2, OpenBLAS at its Haswell kernels, MKL at its conditional-numerical-reproducibility
path that is the same on Intel and AMD processors.

Each library reads its setting once, when it first needs a kernel (OpenBLAS when numpy
is imported), so :func:`pin` runs when the ``unicomp`` package is imported, before it
imports torch or numpy (a program that computes with torch before it imports unicomp
has already chosen its kernels). Decoding also runs on one thread, and on a GPU without
TF32 or autotuned convolutions (:func:`decoding_kernels`).
A variable the user has set is left alone, and ``UNICOMP_NATIVE_KERNELS=1`` turns all
pinning off, the thread count included (faster on AVX-512 and many-core machines;
samples then follow the machine's own kernels, within the contract's tolerance).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager, nullcontext
from pathlib import Path

NATIVE_ENV = "UNICOMP_NATIVE_KERNELS"

#: The variable each library reads, and the value that caps it at the AVX2-era path.
PINS = {
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "COMPATIBLE",
    "OPENBLAS_CORETYPE": "Haswell",
}

#: CPU flags (as /proc/cpuinfo names them) that the AVX2 paths need: ATen's AVX2 build
#: also uses FMA, so a pin without it would crash on the first vectorised loop.
REQUIRED_FLAGS = frozenset({"avx2", "fma"})


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The first processor's feature flags; empty where the system does not list them."""
    try:
        with cpuinfo.open(encoding="ascii", errors="replace") as lines:
            for line in lines:
                key, _, value = line.partition(":")
                if key.strip() == "flags":
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def native(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the user turned pinning off (``UNICOMP_NATIVE_KERNELS``)."""
    return environ.get(NATIVE_ENV, "") not in ("", "0")


def covered(flags: Iterable[str] | None = None) -> bool:
    """Whether decoded samples on this CPU are the contract's exact ones: x86-64 with the
    flags the AVX2 paths need (``flags`` defaults to this machine's)."""
    return REQUIRED_FLAGS <= frozenset(cpu_flags() if flags is None else flags)


def pin(
    environ: MutableMapping[str, str] = os.environ, flags: Iterable[str] | None = None
) -> dict[str, str]:
    """Set every pin the user has not set, on a CPU the contract covers.

    Returns the variables it set. Elsewhere (no AVX2, not x86-64, flags unknown) nothing
    is pinned: a lower path would cost speed without making samples match an AVX2
    machine's, which the contract's tolerance covers instead.
    """
    if native(environ) or not covered(flags):
        return {}
    chosen = {name: value for name, value in PINS.items() if name not in environ}
    environ.update(chosen)
    return chosen


def lower_settings(flags: Iterable[str] | None = None) -> dict[str, dict[str, str]]:
    """Environments under which this machine decodes as a CPU outside the contract's
    exact part would: each a setting the machine accepts (``flags`` defaults to its own),
    by name. What the contract's tolerance is checked and measured under."""
    flags = frozenset(cpu_flags() if flags is None else flags)
    settings = {
        "native kernels": {NATIVE_ENV: "1"},
        "ATen default": {"ATEN_CPU_CAPABILITY": "default"},
    }
    if "avx" in flags:
        settings["oneDNN AVX"] = {"ONEDNN_MAX_CPU_ISA": "AVX"}
    if "sse4_1" in flags:
        settings["lowest"] = {"ONEDNN_MAX_CPU_ISA": "SSE41", "ATEN_CPU_CAPABILITY": "default"}
    return settings


def pinned(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this process decodes on the contract's reference kernels: a covered CPU,
    every pin in place (none overridden by the user)."""
    return covered() and all(environ.get(name) == value for name, value in PINS.items())


@contextmanager
def decoding_kernels(device: str = "cpu") -> Iterator[None]:
    """Run the enclosed decoding on the kernels the decoding contract fixes, then
    restore the caller's settings.

    On the CPU that is one torch thread (unless native kernels were asked for): oneDNN
    picks other convolution kernels for one thread than for several (a 512x480 photo
    then differs by one level in a few pixels); on the small generators unicomp ships
    it is also no slower. On a CUDA ``device`` the generator also runs in full float32
    with deterministic cuDNN algorithms (:func:`_exact_cuda`).
    """
    import torch

    threads = torch.get_num_threads()
    if not native():
        torch.set_num_threads(1)
    try:
        with _exact_cuda() if device.startswith("cuda") else nullcontext():
            yield
    finally:
        torch.set_num_threads(threads)


@contextmanager
def _exact_cuda() -> Iterator[None]:
    """No TF32 (it rounds the inputs of every convolution to 10 bits) and cuDNN's
    deterministic algorithms rather than whichever its autotuner timed fastest."""
    import torch

    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = (cudnn.allow_tf32, matmul.allow_tf32, cudnn.deterministic, cudnn.benchmark)
    cudnn.allow_tf32 = matmul.allow_tf32 = False
    cudnn.deterministic, cudnn.benchmark = True, False
    try:
        yield
    finally:
        cudnn.allow_tf32, matmul.allow_tf32, cudnn.deterministic, cudnn.benchmark = saved

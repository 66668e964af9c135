"""The library's front door: files in, files out, with the right modality and model.

The CLI is a thin shell over these functions; everything it does can be done from
Python with the same checks and the same guarantees (atomic outputs, no overwrite
without ``overwrite=True``, one exception type per kind of failure).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from unicomp.atomic import atomic_output, check_output, write_bytes_atomic
from unicomp.core import container
from unicomp.core.catalog import find_model, resolve_model
from unicomp.core.checkpoint import read_card
from unicomp.core.codec import Codec, EncodeReport
from unicomp.core.devices import resolve_device
from unicomp.core.points import parse_rate
from unicomp.errors import FormatError, InputError, ModelError
from unicomp.plugins.manager import Registry, get_registry

UCZ_SUFFIX = ".ucz"
MAX_UCZ_BYTES = (
    container.MAX_PAYLOAD_BYTES + container.MAX_REFINEMENT_BYTES + 2 * container.MAX_HEADER_BYTES
)

PathLike = str | os.PathLike[str]
#: A device name ("auto", "cpu", "cuda", "cuda:1"; see core/devices.py) or a torch device.
DeviceLike = str | torch.device


@dataclass(frozen=True)
class CompressResult:
    """Where the .ucz went, what it cost, and (if asked) how good the decoding is."""

    output: Path
    report: EncodeReport
    metrics: dict[str, float] | None = None


@dataclass(frozen=True)
class DecompressResult:
    """Where the decoded signal went and which model decoded it."""

    output: Path
    header: container.Header


def load_codec(
    model: PathLike | None = None,
    modality: str | None = None,
    rate: str | None = None,
    registry: Registry | None = None,
    device: DeviceLike = "cpu",
) -> Codec:
    """A codec from a model name or path, or the default model of ``modality`` at ``rate``,
    whose networks run on ``device``.

    ``model`` is a name (bundled, installed or in ``UNICOMP_MODEL_PATH``) or the path of
    a card, weights file or model folder. ``rate`` (such as "0.2bpp") only picks the
    model; pass the rate itself to :meth:`Codec.encode`, which meets it per file.
    """
    registry = registry or get_registry()
    if model is None:
        if modality is None:
            raise InputError("name a model or a modality")
        model = registry.modality(modality).default_model(rate)
    card_path = resolve_model(model, registry.model_dirs)
    modality_of_card = registry.modality(read_card(card_path)["modality"])
    return Codec.load(card_path, modality_of_card, resolve_device(device))


def compress(
    path: PathLike,
    output: PathLike | None = None,
    *,
    model: PathLike | None = None,
    rate: str | float | None = None,
    effort: str = "default",
    admm_iterations: int | None = None,
    overwrite: bool = False,
    metrics: bool = False,
    on_iteration: Callable[[int, int], None] | None = None,
    registry: Registry | None = None,
    codecs: dict[str, Codec] | None = None,
    device: DeviceLike = "cpu",
) -> CompressResult:
    """Compress the file at ``path`` into ``output`` (default: same name, .ucz).

    ``rate`` ("0.2bpp", "1.5kbps" or a number in the modality's unit; default: the
    model's default rate) is met per file: at most it, at most 3 % under it. ``effort``
    ("fast", "default", "best") sets how long the latent search runs;
    ``admm_iterations`` overrides its iteration count.

    The input is read before the model is loaded, so a bad file is reported as a bad
    file even where no model is installed. ``codecs`` keeps loaded models between calls
    (a folder worker passes one, so each model loads once per process). The networks
    run on ``device`` (a name as core/devices.py reads it, or a torch device).
    """
    registry = registry or get_registry()
    source = _existing_file(path)
    target = Path(output) if output is not None else source.with_suffix(UCZ_SUFFIX)
    modality = registry.modality_for(source)
    _check_distinct(source, target)
    check_output(target, overwrite)
    asked = parse_rate(rate, modality.rate_unit) if isinstance(rate, str) else rate
    if model is None:
        model = modality.default_model(None if asked is None else f"{asked:g}{modality.rate_unit}")
    signal = modality.load(source)
    codec = _codec(model, registry, codecs, device)
    if codec.modality.name != modality.name:
        raise InputError(
            f"model {codec.name!r} codes {codec.modality.name!r}, but {source} is {modality.name!r}"
        )
    data, report = codec.encode(
        signal,
        rate=asked,
        effort=effort,
        admm_iterations=admm_iterations,
        on_iteration=on_iteration,
    )
    scores = modality.metrics(signal, codec.decode(data)) if metrics else None
    write_bytes_atomic(target, data, overwrite)
    return CompressResult(target, report, scores)


def decompress(
    path: PathLike,
    output: PathLike | None = None,
    *,
    model: PathLike | None = None,
    overwrite: bool = False,
    registry: Registry | None = None,
    output_dir: PathLike | None = None,
    codecs: dict[str, Codec] | None = None,
    device: DeviceLike = "cpu",
) -> DecompressResult:
    """Decode a .ucz file with the model its header names (or ``model``).

    Without ``output`` the decoded file takes the input's name less ``.ucz``, so
    ``x.png.ucz`` gives back ``x.png`` and ``x.ucz`` gives ``x`` plus the modality's
    first extension; it goes beside the input, or into ``output_dir``. ``codecs`` and
    ``device`` are as for :func:`compress`.
    """
    registry = registry or get_registry()
    source = _existing_file(path)
    data = read_ucz(source)
    header, _ = container.unpack(data)
    if header.modality not in registry.modalities:
        raise ModelError(f"{source} holds {header.modality!r} data; no installed plugin decodes it")
    modality = registry.modality(header.modality)
    if output is not None:
        target = Path(output)
    else:
        folder = Path(output_dir) if output_dir is not None else source.parent
        target = folder / _decoded_name(source, modality.extensions)
    _check_distinct(source, target)
    check_output(target, overwrite)
    card = model if model is not None else find_model(header.model, registry.model_dirs)
    codec = _codec(card, registry, codecs, device)
    signal = codec.decode(data)
    with atomic_output(target, overwrite) as temporary:
        codec.modality.save(signal, temporary)
    return DecompressResult(target, header)


def describe(path: PathLike) -> dict[str, Any]:
    """The header of a .ucz file and its byte layout, as plain data."""
    source = _existing_file(path)
    parts = container.unpack_parts(read_ucz(source))
    header, layout = parts.header, parts.layout
    return {
        "file": str(source),
        "format_version": parts.version,
        "bytes": layout.total,
        "header_bytes": layout.header,
        "payload_bytes": layout.payload,
        "refinement_bytes": layout.refinement,
        "overhead_bytes": layout.overhead,
        "modality": header.modality,
        "model": header.model,
        "weights_digest": header.weights_digest.hex(),
        "coder": header.coder,
        "latent_shape": list(header.latent_shape),
        "side_info": dict(header.side_info),
    }


def read_ucz(path: Path) -> bytes:
    """Read a .ucz file, refusing sizes no valid file can have before reading them."""
    size = path.stat().st_size
    if size > MAX_UCZ_BYTES:
        raise FormatError(f"{path} is {size} bytes, larger than any valid .ucz file")
    return path.read_bytes()


def _existing_file(path: PathLike) -> Path:
    source = Path(path)
    if not source.exists():
        raise InputError(f"{source} does not exist")
    if not source.is_file():
        raise InputError(f"{source} is not a file")
    return source


def _decoded_name(source: Path, extensions: tuple[str, ...]) -> str:
    """The name a decoded file gets: the .ucz file's own, with a suffix the modality writes."""
    name = source.stem
    return name if Path(name).suffix.lower() in extensions else name + extensions[0]


def _codec(
    model: PathLike, registry: Registry, codecs: dict[str, Codec] | None, device: DeviceLike
) -> Codec:
    if codecs is None:
        return load_codec(model, registry=registry, device=device)
    key = f"{model}@{device}"
    if key not in codecs:
        codecs[key] = load_codec(model, registry=registry, device=device)
    return codecs[key]


def _check_distinct(source: Path, target: Path) -> None:
    if target.exists() and target.resolve() == source.resolve():
        raise InputError(f"output {target} would overwrite the input")

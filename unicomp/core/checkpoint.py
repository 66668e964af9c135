"""Models on disk: safetensors weights (never pickle) plus a JSON model card.

A model is two files side by side: ``NAME.safetensors`` (encoder, generators, the
quantizer's centers and any context entropy tables) and ``NAME.json``, the card:
configuration, centers, per-channel integer entropy tables, the weights' sha256, and
how the model was trained and how it scores.
A model path is untrusted input: the card is size-limited and type-checked, the weights
file must sit beside it, and its hash must match before a single tensor is read.

Training state (optimisers, schedulers, RNG, discriminator) uses the same two-file
scheme, with tensors split out of the nested state dicts into the safetensors file.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from unicomp.atomic import atomic_output
from unicomp.core.config import ModelConfig
from unicomp.core.context_coding import context_count
from unicomp.core.entropy import PRECISION, EntropyTables
from unicomp.core.quantizer import Quantizer
from unicomp.errors import ModelError, UnicompError

CARD_FORMAT = "unicomp-model/1"
MAX_CARD_BYTES = 16 << 20


@dataclass
class Model:
    """A trained model, ready to encode and decode."""

    config: ModelConfig
    encoder: nn.Module
    generator: nn.Module
    quantizer: Quantizer
    tables: EntropyTables
    card: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    #: Entropy tables fitted to each operating point's rate-constrained indices.
    point_tables: dict[str, EntropyTables] = field(default_factory=dict)
    #: Generators fine-tuned on those indices (core/point_tuning.py), where tuned.
    point_generators: dict[str, nn.Module] = field(default_factory=dict)
    #: Tables conditioned on neighbouring indices (core/context_coding.py), keyed by
    #: operating point, "" for the default; a point without them codes per channel.
    context_tables: dict[str, EntropyTables] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def digest(self) -> bytes:
        """The first bytes of the weights' sha256, written into every .ucz header."""
        return bytes.fromhex(self.sha256)[:8]


def model_state(model: Model) -> dict[str, torch.Tensor]:
    """The tensors a decoder needs, under stable prefixed names; float32 tensors that
    float16 holds exactly (see :func:`round_to_half`) are stored as float16."""
    modules = {"encoder": model.encoder, "generator": model.generator}
    modules.update({_point_prefix(label): g for label, g in model.point_generators.items()})
    state = {f"{name}.{k}": v for name, m in modules.items() for k, v in m.state_dict().items()}
    state["quantizer.centers"] = model.quantizer.centers.detach()
    for label, tables in model.context_tables.items():
        state[_context_key(label)] = torch.tensor(tables.frequencies, dtype=torch.int32)
    return {k: _compact(v.detach()).contiguous().clone() for k, v in state.items()}


def round_to_half(module: nn.Module) -> None:
    """Round every floating-point parameter and buffer of ``module`` to float16 values,
    in place. Released models are rounded before calibration, so that what export
    measures is what the saved (half as large) file decodes."""
    with torch.no_grad():
        for tensor in itertools.chain(module.parameters(), module.buffers()):
            if tensor.is_floating_point():
                tensor.copy_(tensor.half())


def _compact(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` as float16 if that loses nothing; loading casts it back to float32."""
    if tensor.dtype == torch.float32 and torch.equal(tensor.half().float(), tensor):
        return tensor.half()
    return tensor


def save_model(model: Model, directory: Path, card_extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``NAME.safetensors`` and ``NAME.json`` into ``directory``; return the card path."""
    directory.mkdir(parents=True, exist_ok=True)
    weights_path = directory / f"{model.name}.safetensors"
    with atomic_output(weights_path, overwrite=True) as temporary:
        save_file(model_state(model), str(temporary))
        model.sha256 = sha256_file(temporary)
    card = {
        **model.card,
        **(card_extra or {}),
        "format": CARD_FORMAT,
        "name": model.name,
        "modality": model.config.modality,
        "config": model.config.to_dict(),
        "centers": [float(c) for c in model.quantizer.centers.detach()],
        "entropy": {
            "precision": PRECISION,
            "frequencies": [list(r) for r in model.tables.frequencies],
            "operating_points": {
                label: [list(r) for r in tables.frequencies]
                for label, tables in model.point_tables.items()
            },
        },
        "point_generators": sorted(model.point_generators),
        "weights": {"file": weights_path.name, "sha256": model.sha256},
    }
    model.card = card
    card_path = directory / f"{model.name}.json"
    with atomic_output(card_path, overwrite=True) as temporary:
        temporary.write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")
    return card_path


def read_card(card_path: Path) -> dict[str, Any]:
    """Parse and type-check a model card without touching its weights."""
    try:
        if card_path.stat().st_size > MAX_CARD_BYTES:
            raise ModelError(f"model card {card_path} is larger than {MAX_CARD_BYTES} bytes")
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ModelError(f"cannot read model card {card_path}: {error.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelError(f"model card {card_path} is not valid JSON") from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise ModelError(f"{card_path} is not a unicomp model card ({CARD_FORMAT})")
    for key, kind in (
        ("name", str),
        ("modality", str),
        ("config", dict),
        ("entropy", dict),
        ("weights", dict),
    ):
        if not isinstance(card.get(key), kind):
            raise ModelError(f"model card {card_path} lacks a valid {key!r}")
    weights = card["weights"]
    if not isinstance(weights.get("file"), str) or not isinstance(weights.get("sha256"), str):
        raise ModelError(f"model card {card_path} lacks the weights' file name and sha256")
    if Path(weights["file"]).name != weights["file"]:
        raise ModelError(f"model card {card_path} points outside its folder: {weights['file']!r}")
    return card


def load_model(card_path: Path, build_networks: Any) -> Model:
    """Load a model whose card is at ``card_path``; ``build_networks`` is the modality's.

    The weights' sha256 is checked against the card before they are parsed, so a
    tampered or swapped file is a ModelError, not a silently different model.
    """
    card = read_card(card_path)
    weights_path = card_path.parent / card["weights"]["file"]
    if not weights_path.is_file():
        raise ModelError(f"weights {weights_path} named by {card_path.name} are missing")
    actual = sha256_file(weights_path)
    if actual != card["weights"]["sha256"]:
        raise ModelError(f"weights {weights_path} do not match the sha256 in {card_path.name}")
    try:
        config = ModelConfig.from_dict(card["config"])
        tables = EntropyTables.from_lists(card["entropy"].get("frequencies", []))
        point_tables = {
            str(label): EntropyTables.from_lists(rows)
            for label, rows in dict(card["entropy"].get("operating_points", {})).items()
        }
        state = load_file(str(weights_path))
        encoder, generator, _ = build_networks(config.network)
        quantizer = Quantizer(config.quantizer)
        _load_prefixed(encoder, state, "encoder.")
        _load_prefixed(generator, state, "generator.")
        quantizer.centers.data.copy_(state["quantizer.centers"])
        point_generators = {}
        for label in _point_generator_labels(card, point_tables):
            point_generators[label] = copy.deepcopy(generator)
            _load_prefixed(point_generators[label], state, f"{_point_prefix(label)}.")
        context_tables = _context_tables(state, point_tables, config, tables.channels)
    except ModelError:
        raise
    except (UnicompError, SafetensorError, KeyError, RuntimeError, ValueError, TypeError) as error:
        raise ModelError(f"model {card_path} cannot be loaded: {error}") from None
    for table in (tables, *point_tables.values(), *context_tables.values()):
        if table.num_symbols != quantizer.num_centers:  # a decoded index must pick a center
            raise ModelError(
                f"model {card_path} has {quantizer.num_centers} centers but entropy tables "
                f"of {table.num_symbols} symbols"
            )
    for module in (encoder, generator, *point_generators.values()):
        module.eval()
    return Model(
        config,
        encoder,
        generator,
        quantizer,
        tables,
        card,
        actual,
        point_tables,
        point_generators,
        context_tables,
    )


def save_state(path: Path, state: Mapping[str, Any]) -> None:
    """Save nested training state: tensors to ``path.safetensors``, the rest to JSON."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _split(state, "", tensors)
    with atomic_output(path.with_suffix(".safetensors"), overwrite=True) as temporary:
        save_file(tensors, str(temporary))
    with atomic_output(path.with_suffix(".json"), overwrite=True) as temporary:
        temporary.write_text(json.dumps(skeleton), encoding="utf-8")


def load_state(path: Path) -> dict[str, Any]:
    """Inverse of :func:`save_state`."""
    try:
        tensors = load_file(str(path.with_suffix(".safetensors")))
        skeleton = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, SafetensorError, json.JSONDecodeError) as error:
        raise ModelError(f"training state {path} cannot be read: {error}") from None
    return _join(skeleton, tensors)


def _split(value: Any, key: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        tensors[key] = value.detach().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(value, Mapping):
        if all(isinstance(k, str) for k in value):
            return {k: _split(v, f"{key}.{k}", tensors) for k, v in value.items()}
        return {"__items__": [[k, _split(v, f"{key}.{k}", tensors)] for k, v in value.items()]}
    if isinstance(value, list | tuple):
        return [_split(v, f"{key}.{i}", tensors) for i, v in enumerate(value)]
    return value


def _join(value: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__tensor__"}:
            return tensors[value["__tensor__"]]
        if set(value) == {"__items__"}:
            return {k: _join(v, tensors) for k, v in value["__items__"]}
        return {k: _join(v, tensors) for k, v in value.items()}
    if isinstance(value, list):
        return [_join(v, tensors) for v in value]
    return value


def _point_prefix(label: str) -> str:
    return f"point_generators.{label}"


def _point_generator_labels(
    card: Mapping[str, Any], point_tables: Mapping[str, EntropyTables]
) -> list[str]:
    """The card's list of points with their own generator: each must have tables."""
    labels = card.get("point_generators", [])
    if not isinstance(labels, list) or not all(label in point_tables for label in labels):
        raise ModelError(f"model {card.get('name')!r} lists generators of unknown points")
    return labels


def _context_key(label: str) -> str:
    return f"entropy.contexts.{label}" if label else "entropy.contexts"


def _context_tables(
    state: Mapping[str, torch.Tensor],
    point_tables: Mapping[str, EntropyTables],
    config: ModelConfig,
    channels: int,
) -> dict[str, EntropyTables]:
    """The context tables stored among the weights (so the weights' digest in every
    file covers them), each of one row per channel and context."""
    rows = channels * context_count(config.quantizer.num_centers, len(config.train.crop))
    found = {}
    for label in ("", *point_tables):
        frequencies = state.get(_context_key(label))
        if frequencies is None:
            continue
        if frequencies.dim() != 2 or frequencies.shape[0] != rows:
            raise ModelError(f"context tables of point {label!r} are not {rows} rows")
        found[label] = EntropyTables.from_lists(frequencies.tolist())
    return found


def _load_prefixed(module: nn.Module, state: Mapping[str, torch.Tensor], prefix: str) -> None:
    own = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    module.load_state_dict(own, strict=True)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks so large files need not fit in memory."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()

"""Models on disk: safetensors weights (never pickle) plus a JSON model card.

A model is two files side by side: ``NAME.safetensors`` (encoder, generators, the
quantizer's centers and any context entropy tables) and ``NAME.json``, the card:
configuration, centers, one block per operating point (core/points.py: its rate
weight, per-channel integer tables, coder, and where its coder tables and generator sit
in the weights), the weights' sha256, and how the model was trained and how it scores.
Cards of the first format (points spread over several keys) still load.
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
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from unicomp.atomic import atomic_output
from unicomp.core.blends import blend, blend_label, parse_blend_label
from unicomp.core.coders import CONTEXT, PER_CHANNEL, coder_named
from unicomp.core.config import ModelConfig
from unicomp.core.context_coding import context_count
from unicomp.core.entropy import PRECISION, EntropyTables
from unicomp.core.gains import INPUT_GAIN_KEY, GainedGenerator
from unicomp.core.modality import Networks
from unicomp.core.points import OperatingPoint
from unicomp.core.quantizer import Quantizer
from unicomp.errors import ModelError, UnicompError, UsageError

#: A modality's ``build_networks``: the network config → encoder, generator, critic.
BuildNetworks = Callable[[Mapping[str, Any]], Networks]

CARD_FORMAT = "unicomp-model/2"
#: Cards whose points are spread over the config, ``entropy`` and ``point_generators``.
LEGACY_CARD_FORMAT = "unicomp-model/1"
MAX_CARD_BYTES = 16 << 20
#: Blends of points (core/blends.py) a loaded model keeps built.
KEPT_BLENDS = 4
#: The weights key of the default point's latent gain (core/gains.py); other points'
#: add ``.<label>``.
LATENT_GAIN_KEY = "latent_gain"


@dataclass
class Model:
    """A trained model, ready to encode and decode at each of its operating points."""

    config: ModelConfig
    encoder: nn.Module
    quantizer: Quantizer
    #: The rates it serves; the first is the default (core/points.py).
    points: list[OperatingPoint]
    card: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    _blends: OrderedDict[str, OperatingPoint] = field(
        default_factory=OrderedDict, repr=False, compare=False
    )

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def digest(self) -> bytes:
        """The first bytes of the weights' sha256, written into every .ucz header."""
        return bytes.fromhex(self.sha256)[:8]

    def point(self, label: str | None = None) -> OperatingPoint:
        """The operating point called ``label``; None (or the default's own label) is
        the default point, and ``<a>+<b>@<k>`` a blend of two points (core/blends.py).
        An unknown label raises UsageError naming the known ones."""
        if label is None or label == self.points[0].label:
            return self.points[0]
        for point in self.points:
            if point.label == label:
                return point
        parsed = parse_blend_label(label)
        if parsed is not None:
            return self._blend(*parsed)
        known = ", ".join(sorted(p.label for p in self.points if p.label is not None))
        raise UsageError(
            f"model {self.name!r} has no operating point {label!r} (known: {known or 'none'})"
        )

    def _blend(self, low: str, high: str, step: int) -> OperatingPoint:
        """A blend of two of the model's points, kept for the next files (a few only:
        each holds a generator)."""
        key = blend_label(low, high, step)
        if key not in self._blends:
            if low == high:
                raise UsageError(f"blend {key!r} names one point twice")
            self._blends[key] = blend(self.point(low), self.point(high), step)
            while len(self._blends) > KEPT_BLENDS:
                self._blends.pop(next(iter(self._blends)))
        self._blends.move_to_end(key)
        return self._blends[key]

    def set_point(self, point: OperatingPoint, default: bool = False) -> None:
        """Add ``point`` or replace the one of its label; ``default`` makes it the first."""
        self._blends.clear()
        points = [p for p in self.points if p.label != point.label]
        at = next((i for i, p in enumerate(self.points) if p.label == point.label), len(points))
        points.insert(0 if default else at, point)
        self.points = points

    def drop_point(self, label: str | None) -> None:
        """Remove the point called ``label`` (a model keeps at least one)."""
        self._blends.clear()
        kept = [p for p in self.points if p.label != label]
        if not kept:
            raise UsageError(f"model {self.name!r} cannot lose its only operating point")
        self.points = kept


def model_state(model: Model) -> dict[str, torch.Tensor]:
    """The tensors a decoder needs, under stable prefixed names; float32 tensors that
    float16 holds exactly (see :func:`round_to_half`) are stored as float16."""
    modules = {"encoder": model.encoder}
    for index, point in enumerate(model.points):
        modules.setdefault(_generator_prefix(model, index), point.generator)
    state = {f"{name}.{k}": v for name, m in modules.items() for k, v in m.state_dict().items()}
    state["quantizer.centers"] = model.quantizer.centers.detach()
    for index, point in enumerate(model.points):
        key = _coder_tables_key(model, index)
        if key is not None:
            state[key] = torch.tensor(point.coder_tables.frequencies, dtype=torch.int32)
        gain_key = _latent_gain_key(model, index)
        if gain_key is not None and point.latent_gain is not None:
            state[gain_key] = point.latent_gain.detach().float()
    return {k: _compact(v.detach().cpu()).contiguous().clone() for k, v in state.items()}


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
    kept = {k: v for k, v in model.card.items() if k != "point_generators"}  # first format
    card = {
        **kept,
        **(card_extra or {}),
        "format": CARD_FORMAT,
        "name": model.name,
        "modality": model.config.modality,
        "config": model.config.to_dict(),
        "centers": [float(c) for c in model.quantizer.centers.detach()],
        "entropy": {"precision": PRECISION},
        "operating_points": [
            {
                "label": point.label,
                "rate_weight": point.rate_weight,
                "search_tables": [list(r) for r in point.search_tables.frequencies],
                "coder": point.coder.name,
                "coder_tables": _coder_tables_key(model, index),
                "generator": _generator_prefix(model, index),
                "latent_gain": _latent_gain_key(model, index),
            }
            for index, point in enumerate(model.points)
        ],
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
    if not isinstance(card, dict) or card.get("format") not in (CARD_FORMAT, LEGACY_CARD_FORMAT):
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


def load_model(card_path: Path, build_networks: BuildNetworks) -> Model:
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
        state = load_file(str(weights_path))
        encoder, generator, _ = build_networks(config.network)
        quantizer = Quantizer(config.quantizer)
        _load_prefixed(encoder, state, "encoder.")
        quantizer.centers.data.copy_(state["quantizer.centers"])
        legacy = card["format"] == LEGACY_CARD_FORMAT
        specs = _legacy_specs(card, set(state)) if legacy else card["operating_points"]
        points = _points(specs, state, config, generator)
    except ModelError:
        raise
    except (UnicompError, SafetensorError, KeyError, RuntimeError, ValueError, TypeError) as error:
        raise ModelError(f"model {card_path} cannot be loaded: {error}") from None
    for point in points:
        for table in (point.search_tables, point.coder_tables):
            if table.num_symbols != quantizer.num_centers:  # a decoded index must pick a center
                raise ModelError(
                    f"model {card_path} has {quantizer.num_centers} centers but entropy tables "
                    f"of {table.num_symbols} symbols"
                )
    encoder.eval()
    for point in points:
        point.generator.eval()
    return Model(config, encoder, quantizer, points, card, actual)


def save_state(path: Path, state: Mapping[str, Any]) -> None:
    """Save nested training state: tensors to ``path.safetensors``, the rest to JSON.

    Tensors are saved from the CPU, so a state saved on a GPU resumes on a CPU and back.
    """
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
        tensors[key] = value.detach().cpu().contiguous().clone()
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


def _generator_prefix(model: Model, index: int) -> str:
    """Where point ``index``'s generator sits in the weights: the default point's (shared
    by every point without its own) under ``generator``, others under their label."""
    point, default = model.points[index], model.points[0]
    if index == 0 or point.generator is default.generator:
        return "generator"
    return _own_generator_prefix(point.label)


def _coder_tables_key(model: Model, index: int) -> str | None:
    """Where point ``index``'s context tables sit in the weights (so the weights' digest
    in every file covers them); None for a per-channel point, coded with its search
    tables."""
    point = model.points[index]
    if point.coder is not CONTEXT:
        return None
    return _context_key(None if index == 0 else point.label)


def _latent_gain_key(model: Model, index: int) -> str | None:
    """Where point ``index``'s latent gain sits in the weights (None: it has none)."""
    point = model.points[index]
    if point.latent_gain is None:
        return None
    return LATENT_GAIN_KEY if index == 0 else f"{LATENT_GAIN_KEY}.{point.label}"


def _own_generator_prefix(label: str | None) -> str:
    """The weights prefix of a generator tuned for point ``label`` alone."""
    return f"point_generators.{label}"


def _context_key(label: str | None) -> str:
    """The weights key of the context tables of point ``label`` (None: the default's)."""
    return "entropy.contexts" if label is None else f"entropy.contexts.{label}"


def _points(
    specs: Any, state: Mapping[str, torch.Tensor], config: ModelConfig, generator: nn.Module
) -> list[OperatingPoint]:
    """The operating points a card's blocks describe, their generators and context tables
    taken from the weights (a card is untrusted: every reference is checked)."""
    if not isinstance(specs, list) or not specs:
        raise ModelError("model card lists no operating points")
    contexts = context_count(config.quantizer.num_centers, len(config.train.crop))
    generators: dict[str, nn.Module] = {}
    points = []
    for spec in specs:
        label = spec["label"]
        if label is not None and not isinstance(label, str):
            raise ModelError(f"operating point label {label!r} is not a string")
        search_tables = EntropyTables.from_lists(spec["search_tables"])
        coder = coder_named(spec["coder"])
        key = spec["coder_tables"]
        rows = search_tables.channels * contexts
        coder_tables = search_tables if key is None else _context_tables(state, key, rows)
        if (coder is CONTEXT) != (key is not None):
            raise ModelError(f"point {label!r}: coder {coder.name} with tables {key!r}")
        prefix = spec["generator"]
        if prefix not in ("generator", _own_generator_prefix(label)):
            raise ModelError(f"point {label!r} names generator {prefix!r}")
        if prefix not in generators:
            generators[prefix] = _generator(state, prefix, generator, search_tables.channels)
        weight = float(spec["rate_weight"])
        gain = _latent_gain(state, spec.get("latent_gain"), label, search_tables.channels)
        points.append(
            OperatingPoint(
                label, weight, search_tables, coder, coder_tables, generators[prefix], gain
            )
        )
    labels = [point.label for point in points]
    if len(set(labels)) != len(labels) or None in labels[1:]:
        raise ModelError(f"operating points {labels} repeat a label")
    return points


def _generator(
    state: Mapping[str, torch.Tensor], prefix: str, generator: nn.Module, channels: int
) -> nn.Module:
    """The generator stored under ``prefix``: the modality's ``generator`` itself for
    the default's, a copy for a point's own, wrapped in a GainedGenerator if the
    weights hold an input gain for it."""
    body = generator if prefix == "generator" else copy.deepcopy(generator)
    gain = state.get(f"{prefix}.{INPUT_GAIN_KEY}")
    if gain is not None:
        if gain.shape != (channels,):
            raise ModelError(f"input gain of {prefix!r} is not one value per latent channel")
        body = GainedGenerator(body, channels)
    _load_prefixed(body, state, f"{prefix}.")
    return body


def _latent_gain(
    state: Mapping[str, torch.Tensor], key: Any, label: str | None, channels: int
) -> torch.Tensor | None:
    """Point ``label``'s latent gain stored under ``key`` (None: it has none)."""
    if key is None:
        return None
    if not isinstance(key, str) or not key.startswith(LATENT_GAIN_KEY) or key not in state:
        raise ModelError(f"point {label!r}: latent gain {key!r} is not in the weights")
    gain = state[key].float()
    if gain.shape != (channels,):
        raise ModelError(f"point {label!r}: latent gain is not one value per latent channel")
    return gain


def _legacy_specs(card: Mapping[str, Any], weight_keys: set[str]) -> list[dict[str, Any]]:
    """The point blocks of a first-format card, whose points lived in the config (label →
    weight, the default's weight in ``admm.rate_weight``), ``entropy`` (the default's
    tables, then each other point's) and ``point_generators``. The default point is the
    configured label without tables of its own; with none or several, an unnamed one."""
    config, entropy = card["config"], card["entropy"]
    weights = dict(config.get("operating_points", {}))
    rows = dict(entropy.get("operating_points", {}))
    own = card.get("point_generators", [])
    if not isinstance(own, list) or not set(own) <= set(rows) or not set(rows) <= set(weights):
        raise ModelError(f"model {card.get('name')!r} lists tables or generators of unknown points")
    untabled = [label for label in weights if label not in rows]
    default = untabled[0] if len(untabled) == 1 else None

    def spec(label: str | None, weight: Any, tables: Any, contexts: str) -> dict[str, Any]:
        generator = _own_generator_prefix(label) if label in own else "generator"
        return {
            "label": label,
            "rate_weight": weight,
            "search_tables": tables,
            "coder": (CONTEXT if contexts in weight_keys else PER_CHANNEL).name,
            "coder_tables": contexts if contexts in weight_keys else None,
            "generator": generator,
        }

    default_weight = dict(config.get("admm", {})).get("rate_weight", 0.0)
    specs = [spec(default, default_weight, entropy.get("frequencies", []), _context_key(None))]
    for label, tables in rows.items():
        specs.append(spec(label, weights[label], tables, _context_key(label)))
    return specs


def _context_tables(state: Mapping[str, torch.Tensor], key: Any, rows: int) -> EntropyTables:
    """Context tables stored among the weights under ``key``: ``rows`` rows, one per
    channel and context of the model's latent."""
    if not isinstance(key, str) or not key.startswith(_context_key(None)) or key not in state:
        raise ModelError(f"context tables {key!r} are not in the weights")
    frequencies = state[key]
    if frequencies.dim() != 2 or frequencies.shape[0] != rows:
        raise ModelError(f"context tables {key!r} are not {rows} rows")
    return EntropyTables.from_lists(frequencies.tolist())


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

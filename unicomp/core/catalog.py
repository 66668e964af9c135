"""Where models are found: folders named by ``UNICOMP_MODEL_PATH``, then those plugins
register (the bundled weights among them). A model is found by its card (core/checkpoint.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from unicomp.core.checkpoint import read_card
from unicomp.errors import ModelError

MODEL_PATH_ENV = "UNICOMP_MODEL_PATH"


def model_dirs(extra: list[Path]) -> list[Path]:
    """Where models are searched: ``UNICOMP_MODEL_PATH`` first, then plugin folders."""
    from_env = [Path(p) for p in os.environ.get(MODEL_PATH_ENV, "").split(os.pathsep) if p]
    return from_env + list(extra)


def resolve_model(name_or_path: str | os.PathLike[str], dirs: list[Path]) -> Path:
    """The card path of a model given by path (card, weights or folder) or by name."""
    path = Path(name_or_path)
    if path.suffix == ".json" and path.is_file():
        return path
    if path.suffix == ".safetensors":
        if path.with_suffix(".json").is_file():
            return path.with_suffix(".json")
        raise ModelError(f"no model card {path.with_suffix('.json')} beside {path}")
    if path.is_dir():
        cards = _cards_in(path)
        if len(cards) != 1:
            raise ModelError(f"{path} holds {len(cards)} models; name one card")
        return cards[0]
    return find_model(str(name_or_path), dirs)


def find_model(name: str, dirs: list[Path]) -> Path:
    """The card of the model called ``name`` in the search folders.

    A .ucz header names its model, so ``name`` may be hostile: only a plain file stem
    is looked up, never a path that would read a card (or list a folder) elsewhere.
    """
    if not name or name.startswith(".") or any(c in name for c in "/\\\0"):
        raise ModelError(f"{name!r} is not a model name")
    for directory in model_dirs(dirs):
        candidate = directory / f"{name}.json"
        if candidate.is_file():
            return candidate
    searched = ", ".join(str(d) for d in model_dirs(dirs)) or "nowhere"
    raise ModelError(f"model {name!r} not found (searched {searched})")


def available_models(dirs: list[Path]) -> list[Path]:
    """Every model card in the search folders, first occurrence of a name wins."""
    seen: dict[str, Path] = {}
    for directory in model_dirs(dirs):
        for card in _cards_in(directory):
            seen.setdefault(card.stem, card)
    return list(seen.values())


def _cards_in(directory: Path) -> list[Path]:
    """Model cards in a folder, skipping other JSON (such as a trainer's state file)."""
    cards = []
    for candidate in sorted(directory.glob("*.json")):
        if not candidate.with_suffix(".safetensors").is_file():
            continue
        try:
            read_card(candidate)
        except ModelError:
            continue
        cards.append(candidate)
    return cards

"""Model cards of the first format, whose operating points were spread over the config,
``entropy`` and ``point_generators``, load into the same points as today's cards; cards
that name no search method keep the ADMM search they were made for.

tests/data/speech-v1.format1.json is speech-v1's card as released in that format; the
bundled weights it names are unchanged, so it must describe the bundled model exactly.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from unicomp.core.checkpoint import load_model
from unicomp.core.config import ModelConfig, merge
from unicomp.errors import UsageError
from unicomp.modalities.speech.modality import SpeechModality
from unicomp.weights import BUNDLED_DIR

LEGACY_CARD = Path(__file__).with_name("data") / "speech-v1.format1.json"


@pytest.fixture(scope="module")
def legacy_and_current(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("legacy")
    shutil.copy(BUNDLED_DIR / "speech-v1.safetensors", folder)
    shutil.copy(LEGACY_CARD, folder / "speech-v1.json")
    build = SpeechModality().build_networks
    return load_model(folder / "speech-v1.json", build), load_model(
        BUNDLED_DIR / "speech-v1.json", build
    )


def test_a_first_format_card_gives_the_points_of_the_current_one(legacy_and_current) -> None:
    legacy, current = legacy_and_current
    assert legacy.sha256 == current.sha256
    assert legacy.config.rates == current.config.rates == ["2kbps", "1kbps"]
    assert len(legacy.points) == len(current.points) == 2
    for old, new in zip(legacy.points, current.points, strict=True):
        assert (old.label, old.rate_weight, old.coder.name) == (
            new.label,
            new.rate_weight,
            "rans16ctx",
        )
        assert old.search_tables == new.search_tables
        assert old.coder_tables == new.coder_tables
        old_state, new_state = old.generator.state_dict(), new.generator.state_dict()
        assert all(torch.equal(old_state[k], new_state[k]) for k in new_state)
    # The default point is the configured label without tables of its own.
    assert legacy.point().label == "2kbps" and legacy.point("1kbps") is legacy.points[1]


def test_a_card_naming_no_search_method_was_made_for_admm(legacy_and_current) -> None:
    legacy, current = legacy_and_current
    assert legacy.config.admm.method == "admm"
    assert current.config.admm.method == "straight-through"


def test_an_unknown_search_method_is_refused() -> None:
    config = ModelConfig(name="m", modality="speech")
    with pytest.raises(UsageError, match="unknown search method 'annealing'"):
        merge(config, {"admm": {"method": "annealing"}})

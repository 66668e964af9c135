"""One dataclass per concern, saved beside the weights so a model says how it was made."""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from unicomp.errors import UsageError

#: A training phase, which is also how the quantizer treats latents in it.
Mode = Literal["float", "soft", "hard"]
#: How hard the encoder searches (:meth:`AdmmConfig.at_effort`).
EFFORTS = ("fast", "default", "best")
#: ``--effort best`` runs this many times the default search's iterations and patience.
BEST_SCALE = 10
#: The latent searches (core/search.py); cards that name none mean ADMM, the only one
#: before straight-through steps.
SEARCH_METHODS = ("straight-through", "admm")
LEGACY_SEARCH_METHOD = "admm"

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


@dataclass
class QuantizerConfig:
    """K scalar centers; the soft-assignment temperature is annealed over the soft phase.

    Temperatures are scale-free: squared distances are divided by the mean squared gap
    between neighbouring centers, so the same schedule works whatever the latent's range.

    ``zero_center`` pins the center nearest 0 at exactly 0 after k-means, and keeps it
    there: a rate-aware model's low-rate points shrink their latents towards 0, which
    k-means alone left between two centers (image-v2's nine ended at ±1.6).

    ``clipped_straight_through`` passes the hard phase's gradient to the latent only
    where it lies within the centers' range (core/quantizer.py), as the soft phase's
    assignment gradient does.
    """

    num_centers: int = 16
    temperature_start: float = 1.0
    temperature_end: float = 4.0
    kmeans_samples: int = 65536
    kmeans_iterations: int = 40
    zero_center: bool = False
    clipped_straight_through: bool = False


@dataclass
class AdmmConfig:
    """Budget and schedule of the per-signal latent search (see core/search.py).

    ``method`` is ``straight-through`` or ``admm``; ``inner_steps``, ``rho``,
    ``rho_growth`` and ``patience`` are ADMM's alone. ``learning_rate`` is the
    root-mean-square size of each z-step's move of a signal's latent; with a
    ``final_learning_rate`` (straight-through only) the steps shrink geometrically from
    the one to the other over ``anneal_steps`` iterations (None: all of them), so bold
    moves come first and fine ones last, then start again from the bold size where the
    search runs longer (warm restarts, as ``--effort best`` does). Stretched over more
    iterations instead, the same sizes did worse on speech (None: every step alike).
    ``time_budget``
    caps the default search in seconds (it stops before an iteration that would pass
    it, judged by the mean so far); ``best_seconds`` caps ``--effort best`` per
    unit of signal size (the modality's ``size``: seconds per second of audio, per
    megapixel), None meaning no cap. With ``step_seconds``, what one iteration takes per
    unit of size on the reference machine, both caps become iteration counts chosen from
    the signal's size instead of read off the clock: an encode is then the same on a
    busy machine as on an idle one.
    """

    method: str = "straight-through"
    iterations: int = 30
    inner_steps: int = 4
    learning_rate: float = 0.05
    final_learning_rate: float | None = None
    anneal_steps: int | None = None
    rho: float = 0.2
    rho_growth: float = 1.12
    patience: int = 8
    time_budget: float | None = None
    best_seconds: float | None = None
    step_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.method not in SEARCH_METHODS:
            raise UsageError(
                f"unknown search method {self.method!r} (known: {', '.join(SEARCH_METHODS)})"
            )
        if self.learning_rate <= 0 or (
            self.final_learning_rate is not None and self.final_learning_rate <= 0
        ):
            raise UsageError("search learning rates must be positive")

    def step_size(self, iteration: int) -> float:
        """The rms move of straight-through step ``iteration`` (1 to ``iterations``)."""
        cycle = self.anneal_steps or self.iterations
        if self.final_learning_rate is None or cycle <= 1:
            return self.learning_rate
        progress = ((iteration - 1) % cycle) / (cycle - 1)
        return self.learning_rate * (self.final_learning_rate / self.learning_rate) ** progress

    def at_effort(self, effort: str, size: float | None) -> AdmmConfig:
        """The search an ``--effort`` asks for, like AVIF's speeds or x264's presets:
        ``fast`` sends the encoder's projected output, ``default`` is this search, and
        ``best`` searches BEST_SCALE times longer, within ``best_seconds`` times the
        signal's ``size`` (no time cap without either)."""
        if effort == "fast":
            return dataclasses.replace(self, iterations=0)
        if effort == "default":
            return self._counted(size)
        if effort == "best":
            budget = None
            if self.best_seconds is not None and size is not None:
                budget = self.best_seconds * size
            longer = dataclasses.replace(
                self,
                iterations=self.iterations * BEST_SCALE,
                anneal_steps=self.anneal_steps or self.iterations,
                patience=self.patience * BEST_SCALE,
                time_budget=budget,
            )
            return longer._counted(size)
        raise UsageError(f"unknown effort {effort!r} (known: {', '.join(EFFORTS)})")

    def _counted(self, size: float | None) -> AdmmConfig:
        """This search with its time budget turned into the iterations it affords for a
        signal of ``size`` at ``step_seconds`` (unchanged without both)."""
        if self.step_seconds is None or self.time_budget is None or not size:
            return self
        affordable = math.floor(self.time_budget / (self.step_seconds * size))
        return dataclasses.replace(
            self, iterations=min(self.iterations, affordable), time_budget=None
        )


@dataclass
class TrainConfig:
    """The three training phases (float, soft, hard) and the GAN losses.

    ``rate_weights`` makes training rate-aware (core/rate_model.py): from the soft phase
    on, the loss adds each weight times the bits per latent element the context coder
    would spend. With several weights one model learns one operating point per weight,
    conditioned by per-channel gains (core/gains.py); the first is the default. Empty:
    the rate is left to calibration, as models before rate-aware training were made.

    ``max_downscale`` > 1 shows crops at random scales down to 1/max_downscale
    (core/data.py): for photos far larger than the signals the model will code.

    ``speed_factors`` adds a copy of every speech prompt played that many times faster
    (speed perturbation): its pitch and formants move with the speed, as another
    speaker's voice would sit. Only the speech release recipe (release/speech.py) reads it.

    ``centered_gains`` makes each channel's log gains sum to zero over the points
    (core/trainer.py, PointGains), so that they cannot trade with the encoder's output
    scale. Free, in image-v2's run 3 the encoder's output shrank until three of its four
    points sat at the gain bound and coded alike (0.068, 0.068, 0.065 bpp on train
    photos at step 8500).

    ``rate_targets`` (one per rate weight, bits per latent element as the training
    tables count them) steers the points to those rates (core/rate_steering.py); the
    weights then only start the rate term's level and set its proportions.
    """

    float_steps: int = 2000
    soft_steps: int = 2000
    hard_steps: int = 2000
    batch_size: int = 8
    crop: list[int] = field(default_factory=lambda: [128, 128])
    learning_rate: float = 2e-4
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    adversarial_weight: float = 1.0
    feature_matching_weight: float = 10.0
    reconstruction_weight: float = 1.0
    commitment_weight: float = 0.25
    rate_weights: list[float] = field(default_factory=list)
    rate_targets: list[float] = field(default_factory=list)
    max_downscale: float = 1.0
    speed_factors: list[float] = field(default_factory=list)
    centered_gains: bool = True
    adversarial_start: int = 0
    checkpoint_every: int = 200
    log_every: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if self.rate_targets and len(self.rate_targets) != len(self.rate_weights):
            raise UsageError(
                f"rate_targets needs one target per rate weight ({len(self.rate_weights)}),"
                f" got {len(self.rate_targets)}"
            )
        if any(not target > 0 for target in self.rate_targets):
            raise UsageError(f"rate_targets must be positive, got {self.rate_targets}")
        if any(not 0.5 <= factor <= 2.0 for factor in self.speed_factors):
            raise UsageError(f"speed_factors must lie between 0.5 and 2, got {self.speed_factors}")

    @property
    def total_steps(self) -> int:
        return self.float_steps + self.soft_steps + self.hard_steps

    def phase_at(self, step: int) -> Mode:
        """The phase that step number ``step`` (0-based) belongs to."""
        if step < self.float_steps:
            return "float"
        if step < self.float_steps + self.soft_steps:
            return "soft"
        return "hard"


@dataclass
class RefinementConfig:
    """The coarse correction layer a file may carry (core/refinement.py).

    Per file, the encoder tries every cell size in ``cells`` (samples per signal axis)
    with every quantizer step in ``steps`` (model-space units) and keeps the one that
    leaves the least error within the bits left: a file asked to be at a rate first
    aims its latent at ``1 - share`` of it, the rest being the correction's.
    """

    cells: list[int] = field(default_factory=lambda: [32, 64, 128])
    steps: list[float] = field(default_factory=lambda: [0.01, 0.02])
    share: float = 0.05

    def __post_init__(self) -> None:
        if not self.cells or any(not isinstance(c, int) or c < 1 for c in self.cells):
            raise UsageError(f"refinement cells must be positive integers, not {self.cells}")
        if not self.steps or any(not s > 0 for s in self.steps):
            raise UsageError(f"refinement steps must be positive, not {self.steps}")
        if not 0.0 <= self.share < 1.0:
            raise UsageError(f"refinement share must be in [0, 1), not {self.share}")


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model: networks, quantizer, search and training.

    ``rates`` are the rate labels (``--rate 0.06bpp``) a release calibrates the model
    for: each becomes an operating point (core/points.py).
    """

    name: str
    modality: str
    network: dict[str, Any] = field(default_factory=dict)
    rates: list[str] = field(default_factory=list)
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)
    admm: AdmmConfig = field(default_factory=AdmmConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    #: The coarse correction layer, or None: files carry none.
    refinement: RefinementConfig | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        """Rebuild from a model card; unknown keys are errors, not silently ignored.

        Cards of the first format kept the points' weights here (``operating_points``,
        label → weight, and ``admm.rate_weight``); the labels become ``rates``. Cards
        that name no search method were made for ADMM.
        """
        data = dict(data)
        legacy = data.pop("operating_points", None)
        if isinstance(legacy, Mapping) and "rates" not in data:
            data["rates"] = list(legacy)
        if isinstance(data.get("admm"), Mapping):
            admm = {k: v for k, v in data["admm"].items() if k != "rate_weight"}
            data["admm"] = {"method": LEGACY_SEARCH_METHOD, **admm}
        return merge(cls(name=str(data["name"]), modality=str(data["modality"])), data)


def merge(config: ModelConfig, overrides: Mapping[str, Any]) -> ModelConfig:
    """Return ``config`` with the nested ``overrides`` (e.g. from TOML) applied."""
    result = dataclasses.replace(config)
    for key, value in overrides.items():
        if key in ("name", "modality"):
            setattr(result, key, str(value))
        elif key == "network":
            result.network = {**result.network, **dict(value)}
        elif key == "rates":
            if isinstance(value, str) or not isinstance(value, Sequence):
                raise UsageError(f"rates must be a list of rate labels, not {value!r}")
            result.rates = [str(label) for label in value]
        elif key in ("quantizer", "admm", "train"):
            setattr(result, key, _replace_fields(getattr(result, key), value, key))
        elif key == "refinement":
            current = result.refinement or RefinementConfig()
            result.refinement = None if value is None else _replace_fields(current, value, key)
        else:
            raise UsageError(f"unknown configuration section {key!r}")
    return result


def load_overrides(path: Path) -> dict[str, Any]:
    """Read a TOML configuration file whose tables mirror ModelConfig."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read config {path}: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"config {path} is not valid TOML: {error}") from None


def _replace_fields(section: Any, values: Mapping[str, Any], where: str) -> Any:
    known = {f.name for f in dataclasses.fields(section)}
    unknown = set(values) - known
    if unknown:
        raise UsageError(f"unknown key(s) in [{where}]: {', '.join(sorted(unknown))}")
    return dataclasses.replace(section, **dict(values))

"""Three-phase GAN training: float latent, then soft, then hard quantization.

* float: encoder → generator, the quantizer bypassed, so the autoencoder learns first;
* soft: k-means places the centers on the encoder's outputs, then the forward pass uses
  the nearest center while gradients follow the soft assignment (temperature annealed);
* hard: nearest center forward, straight-through to the encoder; the centers still learn.

Losses are LSGAN with a multi-scale PatchGAN critic, feature matching, and the
modality's reconstruction distortion. The run checkpoints every N steps and at phase
changes, each time only once its loss is calm; a loss spike (core/spikes.py) sends it back
to its last checkpoint, past the batches that led to the spike. The batch of a step is a
pure function of (seed, step + batches skipped, rank), so ``resume`` continues exactly,
also on another device (states are saved from the CPU), and loader worker processes can
prepare batches ahead without changing them. Launched by
``torchrun`` it trains with DDP, over NCCL between GPUs and gloo between CPUs, leaves
the process group on every exit (:func:`process_group`), and a job torchrun restarts
(``--max-restarts``) resumes from the last checkpoint on its own.
"""

from __future__ import annotations

import copy
import json
import math
import os
import sys
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from unicomp.core import context_coding
from unicomp.core.checkpoint import Model, load_state, save_model, save_state
from unicomp.core.clipping import GradientGuard
from unicomp.core.coders import CONTEXT, PER_CHANNEL
from unicomp.core.config import ModelConfig
from unicomp.core.data import BatchSchedule, CropDataset
from unicomp.core.devices import Precision, autocast, process_group_backend
from unicomp.core.entropy import EntropyTables, count_indices
from unicomp.core.gains import (
    GainedGenerator,
    fold_input_gain,
    fold_output_gain,
    scale_channels,
)
from unicomp.core.losses import (
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
)
from unicomp.core.modality import Modality
from unicomp.core.networks import grow_stack
from unicomp.core.points import TRAINED_PREFIX, OperatingPoint
from unicomp.core.quantizer import Mode, Quantizer
from unicomp.core.rate_model import ContextRateModel
from unicomp.core.rate_steering import RateSteering
from unicomp.core.spikes import SpikeDetector
from unicomp.errors import InputError, TrainingError, UsageError

STATE_NAME = "state"
LOG_NAME = "log.jsonl"
KMEANS_BATCHES = 8
#: A run that diverges this many times after the same checkpoint gives up.
MAX_ROLLBACKS = 3
#: Steps (at most a quarter of the run) over which a run started from a model raises its
#: learning rate from zero. Fresh Adam moments move every weight by about the learning
#: rate in the first steps: 20 steps at image-v2's 4e-4 without it nearly tripled its
#: error on a train crop, where with it they cut the error (benchmarks/fine_tune_start.py).
FINE_TUNE_WARMUP = 500
#: The point gains learn this many times faster than the networks: at the networks'
#: rate, they moved by 3 % in a 500-step run and points trained at weights 30 times
#: apart coded at the same rate.
GAIN_LR_SCALE = 10.0
#: How the point gains start (see :class:`PointGains`).
GAIN_EXPONENT = 0.3
#: A latent gain stays within this factor of 1 either way (its square, centered over
#: the points). Unbounded, the gains of channels whose encoder output was dying grew to
#: 9300 in image-v2's run 2, the commitment loss spiked to 7400, and the model collapsed
#: near step 5800.
GAIN_BOUND = 16.0
#: The network settings a run may raise above its start model's (:func:`grow_stack`).
GROWABLE = ("residual_blocks", "latent_channels")


class PointGains(nn.Module):
    """The per-channel gains of the operating points trained at ``rate_weights``
    (core/gains.py), kept as logarithms so that they stay positive.

    A point's input gain is the inverse of its latent gain: the generator sees the
    centers at the encoder's scale, and only the quantizer's step relative to the latent
    changes. Tied so, the straight-through gradient of a gain is the quantization
    residual, which prices the step (as LSQ learns step sizes, Esser et al., ICLR
    2020). Learned apart, a latent gain and its input gain trade against each other at
    no cost under straight-through gradients, blind to the step: image-v2's four points,
    500 times apart in weight, drifted to the same gains (0.62-0.69) and the same rates
    within 3500 hard steps, pulled down alike by the commitment loss.

    Centered (the default), each channel's log gains sum to zero over the points, so
    the encoder's output scale cannot trade with them: free, all of image-v2 run 3's
    gains grew together while the encoder's output shrank, until three points sat at the
    bound and coded alike. Anchoring one point's gains at 1 instead let that point pay
    for the shrinking alone: anchored at the first point (run 4) or at the finest (run 5),
    the anchored point's bits fell below those of points of ten times its weight within
    1000 soft steps. A point's log gain starts at -GAIN_EXPONENT times its log weight's
    distance from the mean log weight. Learned from 1, the gains of points 30 times
    apart in weight had moved 5 % apart after 500 steps.
    (High-rate theory says λ^(-1/2): the distortion of a quantizer of step Δ is ∝ Δ² and
    its rate falls by a bit per doubling of Δ, so λ = -dD/dR ∝ Δ². Started there, the
    image model's gains moved back to about λ^(-0.3) within 2000 steps.)
    """

    def __init__(
        self,
        rate_weights: torch.Tensor,
        channels: int,
        centered: bool = True,
        log_scale: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.centered = centered
        self.log_scale: torch.Tensor | None
        self.register_buffer("log_scale", None if log_scale is None else log_scale.float().clone())
        if log_scale is None:
            logs = -GAIN_EXPONENT * (rate_weights.log() - rate_weights.log().mean())
        else:  # steered (core/rate_steering.py): the scales carry the points apart
            logs = torch.zeros_like(rate_weights)
        bound = math.log(GAIN_BOUND)
        raw = bound * torch.atanh((logs / bound).clamp(-0.99, 0.99))
        self.log_latent = nn.Parameter(raw.unsqueeze(1).expand(-1, channels).clone())

    def log_gains(self, points: torch.Tensor) -> torch.Tensor:
        """Each point's log latent gains: kept within ±log(GAIN_BOUND) smoothly, then
        (centered) less their mean over the points; steered, less their mean over the
        channels too, plus the point's steered scale."""
        bound = math.log(GAIN_BOUND)
        logs = bound * torch.tanh(self.log_latent / bound)
        if self.centered:
            logs = logs - logs.mean(dim=0, keepdim=True)
        if self.log_scale is not None:
            # The point's level is the steered scale's alone: learned, each point's mean
            # log gain undid its scale (the sensor's points, steered 2.3 apart, had
            # learned 2.1 back within 300 steps).
            logs = logs - logs.mean(dim=1, keepdim=True) + self.log_scale.unsqueeze(1)
        return logs[points]

    def latent(self, points: torch.Tensor) -> torch.Tensor:
        return self.log_gains(points).exp()

    def input(self, points: torch.Tensor) -> torch.Tensor:
        return (-self.log_gains(points)).exp()


@dataclass
class Forward:
    """What one pass of the autoencoder gives the losses: x̂, the latent z, its
    quantized values, and (quantizing) its hard indices and (rate-aware) each item's
    bits per element.

    ``z`` carries no gradient to the point gains: the commitment loss is the encoder's
    leash alone. Through the gains it would shrink every point's latents alike, a rate
    penalty blind to the points' weights.
    """

    x_hat: torch.Tensor
    z: torch.Tensor
    quantized: torch.Tensor
    indices: torch.Tensor | None
    bits: torch.Tensor | None


class Autoencoder(nn.Module):
    """Encoder, quantizer and generator as one module, so DDP syncs them together, with
    the point gains, the rate model and the rate steering of rate-aware training."""

    def __init__(
        self,
        encoder: nn.Module,
        quantizer: Quantizer,
        generator: nn.Module,
        gains: PointGains | None = None,
        rate_model: ContextRateModel | None = None,
        steering: RateSteering | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.quantizer = quantizer
        self.generator = generator
        self.gains = gains
        self.rate_model = rate_model
        self.steering = steering

    def latent(self, x: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """The latent the quantizer gets: the encoder's output at each item's point."""
        return self._latents(x, points)[0]

    def _latents(self, x: torch.Tensor, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The latent, and the same values without gradient to the gains (Forward.z)."""
        encoded = self.encoder(x).float()  # the quantizer works in float32, under autocast too
        if self.gains is None:
            return encoded, encoded
        gain = self.gains.latent(points)
        return scale_channels(encoded, gain), scale_channels(encoded, gain.detach())

    def forward(self, x: torch.Tensor, mode: Mode, points: torch.Tensor) -> Forward:
        """x, coded at each item's operating point ``points`` (batch,)."""
        z, leashed = self._latents(x, points)
        quantized = self.quantizer(z, mode)
        latent = quantized
        if self.gains is not None:
            latent = scale_channels(quantized, self.gains.input(points))
        indices = bits = None
        if mode != "float":
            indices = self.quantizer.indices(z)
            if self.rate_model is not None:
                assignment = self.quantizer.assignment(z, move_centers=False)
                bits = self.rate_model(assignment, indices, points)
        return Forward(self.generator(latent), leashed, quantized, indices, bits)


@dataclass
class StepReport:
    """What one training step measured; also one line of the JSONL log."""

    step: int
    phase: str
    losses: dict[str, float]
    steps_per_second: float

    def as_json(self) -> str:
        return json.dumps(
            {
                "step": self.step,
                "phase": self.phase,
                **self.losses,
                "steps_per_second": round(self.steps_per_second, 4),
            }
        )


def print_every(steps: int) -> Callable[[StepReport], None]:
    """An ``on_step`` callback that prints one plain line every ``steps`` steps.

    For long runs under ``nohup``, whose logs a progress bar would fill with redraws.
    """
    started = time.monotonic()

    def report(step: StepReport) -> None:
        if step.step % steps == 0:
            losses = " ".join(f"{k} {v:.4f}" for k, v in step.losses.items())
            minutes = (time.monotonic() - started) / 60
            print(
                f"step {step.step} [{step.phase}] {losses} "
                f"({step.steps_per_second:.2f} steps/s, {minutes:.1f} min)",
                flush=True,
            )

    return report


@dataclass(frozen=True)
class Hardware:
    """Where a run computes: the device, its precision, and the processes that load
    batches (0: the training process itself)."""

    device: torch.device = torch.device("cpu")
    precision: Precision = "fp32"
    loader_workers: int = 0


@dataclass
class Distributed:
    """Rank and world size of this process (1 process when not under torchrun), and
    whether torchrun restarted the job after a failure."""

    rank: int = 0
    world_size: int = 1
    restarted: bool = False

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@contextmanager
def process_group(device: torch.device | None = None) -> Iterator[Distributed]:
    """This process's place in the group torchrun describes in the environment (one
    process when there is none), joined for the enclosed work and left on every exit;
    ranks on GPUs (``device``) talk NCCL, ranks on CPUs gloo.

    A gloo group still alive when the interpreter exits tears down under its own threads
    and aborts the process, so that torchrun reports a finished job as failed; on
    success the ranks first wait for each other, so none leaves while another still
    talks to it.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    attempt = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    if world_size <= 1:
        yield Distributed(restarted=attempt > 0)
        return
    if dist.is_initialized():  # the caller's group: the caller leaves it
        yield Distributed(dist.get_rank(), world_size, attempt > 0)
        return
    device = device or torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    store, rank, size = next(dist.rendezvous("env://"))
    # torchrun's agent serves one store to every attempt of a job: a restarted rank that
    # read the failed attempt's addresses from it would wait for a dead peer forever.
    store = dist.PrefixStore(f"unicomp/attempt-{attempt}", store)
    dist.init_process_group(process_group_backend(device), store=store, rank=rank, world_size=size)
    try:
        yield Distributed(dist.get_rank(), world_size, attempt > 0)
        dist.barrier()
    finally:
        dist.destroy_process_group()


class Trainer:
    """Trains one model of one modality; see the module docstring for the schedule."""

    def __init__(
        self,
        modality: Modality,
        config: ModelConfig,
        dataset: CropDataset,
        out_dir: Path,
        distributed: Distributed | None = None,
        card: dict[str, Any] | None = None,
        hardware: Hardware | None = None,
    ) -> None:
        self.modality = modality
        self.config = config
        self.train_config = config.train
        self.out_dir = out_dir
        self.dist = distributed or Distributed()
        self.card = card or {}
        self.hardware = hardware or Hardware()
        self.device = self.hardware.device
        torch.manual_seed(self.train_config.seed)
        encoder, generator, discriminator = modality.build_networks(config.network)
        channels, symbols = _latent_channels(encoder, dataset), config.quantizer.num_centers
        axes = len(config.train.crop)
        self.rate_weights = torch.tensor(self.train_config.rate_weights, dtype=torch.float32)
        self.point_count = max(1, len(self.rate_weights))
        steering = None
        if self.train_config.rate_targets:
            steering = RateSteering(torch.tensor(self.train_config.rate_targets))
        gains = None
        if self.point_count > 1:
            gains = PointGains(
                self.rate_weights,
                channels,
                self.train_config.centered_gains,
                None if steering is None else steering.initial_log_scales(),
            )
        rate_model = None
        if len(self.rate_weights):
            rate_model = ContextRateModel(self.point_count, channels, axes, symbols)
        # Built on the CPU from the seed, then moved: every device starts from the same weights.
        self.autoencoder = Autoencoder(
            encoder, Quantizer(config.quantizer), generator, gains, rate_model, steering
        ).to(self.device)
        self.discriminator = discriminator.to(self.device)
        self.schedule = BatchSchedule(
            dataset,
            self.train_config.batch_size,
            self.train_config.seed,
            self.dist.rank,
            self.dist.world_size,
            self.train_config.max_downscale,
        )
        beta1, beta2 = self.train_config.betas
        lr = self.train_config.learning_rate
        gain_parameters = list(gains.parameters()) if gains is not None else []
        others = [
            p for p in self.autoencoder.parameters() if all(p is not g for g in gain_parameters)
        ]
        groups: list[dict[str, Any]] = [{"params": others}]
        if gain_parameters:
            groups.append({"params": gain_parameters, "lr_scale": GAIN_LR_SCALE})
        self.optimizer_g = torch.optim.Adam(groups, lr=lr, betas=(beta1, beta2))
        self.optimizer_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(beta1, beta2))
        self.guard_g, self.guard_d = GradientGuard(), GradientGuard()
        self.spikes = SpikeDetector()
        #: Batches passed over by rollbacks: step s trains on batch s + skipped.
        self.skipped = 0
        self.rollbacks: dict[int, int] = {}  # checkpoint step -> rollbacks to it
        self.restorable = False  # whether out_dir holds a state of this run
        # Index statistics per operating point, which become its entropy tables.
        points = self.point_count
        self.counts = torch.zeros(points, channels, symbols, dtype=torch.float64)
        contexts = channels * context_coding.context_count(symbols, axes)
        self.context_counts = torch.zeros(points, contexts, symbols, dtype=torch.float64)
        self.step = 0
        self.centers_initialised = False
        #: The released model the run began from (:meth:`start_from`), for its cards.
        self.started_from: dict[str, Any] | None = None
        if self.dist.active:
            devices = [self.device] if self.device.type == "cuda" else None
            # gradient_as_bucket_view: gradients live in the all-reduce buckets, with no
            # copy in and out per step.
            self.autoencoder_ddp: nn.Module = DistributedDataParallel(
                self.autoencoder,
                device_ids=devices,
                find_unused_parameters=True,
                gradient_as_bucket_view=True,
            )
            self.discriminator_ddp: nn.Module = DistributedDataParallel(
                self.discriminator, device_ids=devices, gradient_as_bucket_view=True
            )
        else:
            self.autoencoder_ddp = self.autoencoder
            self.discriminator_ddp = self.discriminator

    # -- public -----------------------------------------------------------------------

    def resume(self) -> bool:
        """Restore the latest training state from ``out_dir``; False when there is none."""
        path = self.out_dir / STATE_NAME
        if not path.with_suffix(".json").is_file():
            return False
        state = load_state(path)
        self.autoencoder.load_state_dict(state["autoencoder"])
        if self.autoencoder.steering is not None:
            # The config's targets win over the saved ones: a run resumed with new
            # targets steers to them, from where its controllers stood.
            self.autoencoder.steering.targets.copy_(torch.tensor(self.train_config.rate_targets))
        self.discriminator.load_state_dict(state["discriminator"])
        self.optimizer_g.load_state_dict(state["optimizer_g"])
        self.optimizer_d.load_state_dict(state["optimizer_d"])
        # States saved before clipping lack the guards; they then learn from here on.
        if "guard_g" in state:
            self.guard_g.load_state_dict(state["guard_g"])
            self.guard_d.load_state_dict(state["guard_d"])
        # States saved before rollbacks lack these: nothing was skipped, the averages relearn.
        self.skipped = int(state.get("skipped", 0))
        if "spikes" in state:
            self.spikes.load_state_dict(state["spikes"])
        else:
            self.spikes.reset()
        self.counts = state["counts"].clone()
        # States saved before context coding lack these; they then count from here on.
        self.context_counts = state.get("context_counts", self.context_counts).clone()
        self.step = int(state["step"])
        self.centers_initialised = bool(state["centers_initialised"])
        self.started_from = state.get("started_from")
        torch.set_rng_state(state["rng"])
        self.restorable = True
        return True

    def start_from(self, model: Model) -> None:
        """Begin this run from a released model: its encoder, its centers and its default
        point's generator (fine-tuning), that point's gains baked into their weights
        (:func:`fold_output_gain`). Only the weights carry over: the discriminator,
        the optimizers and the index statistics start afresh, and the run's config (its
        phases, rate, learning rate) is this trainer's, whose networks and alphabet must
        be the model's, except for more residual blocks or latent channels
        (:func:`grow_stack`): a larger model grown from a released one. The start is
        saved as the run's first checkpoint, so that ``resume`` continues from it, not
        from scratch."""
        if self.step or self.restorable:
            raise UsageError("only a new run can start from a model")
        centers = model.config.quantizer.num_centers
        if not _can_grow(model.config.network, self.config.network) or (
            centers != self.config.quantizer.num_centers
        ):
            raise UsageError(
                f"model {model.name!r} has other networks or centers than the run's config"
                f" (only {' and '.join(GROWABLE)} may grow)"
            )
        try:
            encoder, generator = _default_point_networks(model)
        except ValueError as error:
            raise UsageError(f"model {model.name!r} scales its latents, and {error}") from None
        with torch.no_grad():
            grow_stack(self.autoencoder.encoder, encoder)
            grow_stack(self.autoencoder.generator, generator)
            self.autoencoder.quantizer.centers.copy_(model.quantizer.centers)
        self.centers_initialised = True
        self.started_from = {
            "model": model.name,
            "sha256": model.sha256,
            "steps": model.card.get("training", {}).get("steps"),
        }
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.checkpoint()

    def resume_or_start(self, resume: bool, start_from: Model | None) -> bool:
        """Continue from ``out_dir`` when ``resume`` and a state is there (True); otherwise
        begin from ``start_from`` when given, so that resuming a fine-tuning run never
        falls back to random weights."""
        if resume and self.resume():
            return True
        if start_from is not None:
            self.start_from(start_from)
        return False

    def run(
        self,
        stop_at: int | None = None,
        on_step: Callable[[StepReport], None] | None = None,
        seconds: float | None = None,
    ) -> Path | None:
        """Train to the end (or to ``stop_at``, or until ``seconds`` have passed: a machine
        lent for a fixed time); return the exported model card on rank 0. Every stop ends
        with a checkpoint, so ``resume`` continues from it."""
        if seconds is not None and self.dist.active:
            raise UsageError("a time limit needs one process: ranks could stop apart")
        end = (
            self.train_config.total_steps
            if stop_at is None
            else min(stop_at, self.train_config.total_steps)
        )
        self.out_dir.mkdir(parents=True, exist_ok=True)
        started, first_step = time.monotonic(), self.step
        checkpoint_due = False
        while self.step < end:
            with closing(self._batches(end)) as batches:
                for batch in batches:
                    if seconds is not None and time.monotonic() - started >= seconds:
                        end = self.step
                        break
                    phase = self.train_config.phase_at(self.step)
                    if phase != "float" and not self.centers_initialised:
                        self._initialise_centers()
                        self.checkpoint()
                    if self.step in self._phase_starts():
                        self._reset_generator_moments()
                    if self.step in self._loss_changes():
                        self.spikes.reset()
                    if self.step == self.train_config.float_steps + self.train_config.soft_steps:
                        self.counts.zero_()  # hard-phase statistics replace the soft ones
                        self.context_counts.zero_()
                    losses = self._train_step(phase, batch)
                    self.step += 1
                    rate = (self.step - first_step) / max(time.monotonic() - started, 1e-9)
                    report = StepReport(self.step, phase, losses, rate)
                    if self.dist.is_main and self.step % self.train_config.log_every == 0:
                        self._log(report.as_json())
                    if on_step is not None and self.dist.is_main:
                        on_step(report)
                    diverged, calm = self._health(losses["generator"])
                    if diverged:
                        self._roll_back()
                        checkpoint_due = False
                        break  # the batches restart past the ones that led here
                    checkpoint_due = checkpoint_due or (
                        self.step % self.train_config.checkpoint_every == 0
                        or self.step in self._phase_starts()
                    )
                    if checkpoint_due and calm:
                        self.checkpoint()
                        checkpoint_due = False
        card = self.checkpoint()
        return card if self.step >= self.train_config.total_steps else None

    def checkpoint(self) -> Path | None:
        """Save the full training state and the current model with its card (rank 0,
        which gets the card's path)."""
        counts, context_counts = self._summed_counts()
        self.restorable = True  # rank 0 writes the state every rank restores
        if not self.dist.is_main:
            return None
        state = {
            "step": self.step,
            "centers_initialised": self.centers_initialised,
            "started_from": self.started_from,
            "autoencoder": self.autoencoder.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "optimizer_g": self.optimizer_g.state_dict(),
            "optimizer_d": self.optimizer_d.state_dict(),
            "guard_g": self.guard_g.state_dict(),
            "guard_d": self.guard_d.state_dict(),
            "spikes": self.spikes.state_dict(),
            "skipped": self.skipped,
            "counts": self.counts,
            "context_counts": self.context_counts,
            "rng": torch.get_rng_state(),
        }
        save_state(self.out_dir / STATE_NAME, state)
        return save_model(self.model(counts, context_counts), self.out_dir, self._card())

    def model(self, counts: torch.Tensor, context_counts: torch.Tensor) -> Model:
        """The current weights as a codec model with one operating point per rate weight
        trained (one if none), none with a rate term in the projection, their tables
        from index statistics (:meth:`_summed_counts`): per-channel ones for the search,
        context ones (once counted) for the coder. The first point is the default; the
        others are labelled ``trained-<n>`` (core/points.py) until calibrated."""
        points = [
            self._point(index, counts[index], context_counts[index])
            for index in range(self.point_count)
        ]
        return Model(self.config, self.autoencoder.encoder, self.autoencoder.quantizer, points)

    def _point(
        self, index: int, counts: torch.Tensor, context_counts: torch.Tensor
    ) -> OperatingPoint:
        """Operating point ``index`` as trained, with its index statistics."""
        tables = (
            EntropyTables.from_counts(counts)
            if counts.sum() > 0
            else EntropyTables.uniform(*counts.shape)
        )
        coder, coder_tables = PER_CHANNEL, tables
        if context_counts.sum() > 0:
            coder = CONTEXT
            coder_tables = context_coding.tables_from_counts(context_counts, counts.shape[0])
        generator: nn.Module = self.autoencoder.generator
        latent_gain = None
        gains = self.autoencoder.gains
        if gains is not None:
            which = torch.tensor([index], device=gains.log_latent.device)
            generator = GainedGenerator(generator, counts.shape[0])
            with torch.no_grad():
                generator.input_gain.copy_(gains.input(which)[0])
            latent_gain = gains.latent(which)[0].detach().cpu()
        label = None if index == 0 else f"{TRAINED_PREFIX}{index}"
        return OperatingPoint(label, 0.0, tables, coder, coder_tables, generator, latent_gain)

    def _summed_counts(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Index statistics summed over all ranks."""
        counts, context_counts = self.counts.clone(), self.context_counts.clone()
        if self.dist.active:  # NCCL reduces on the GPU, gloo on the CPU
            counts, context_counts = counts.to(self.device), context_counts.to(self.device)
            dist.all_reduce(counts)
            dist.all_reduce(context_counts)
        return counts.cpu(), context_counts.cpu()

    # -- internals --------------------------------------------------------------------

    def _batches(self, end: int) -> Generator[torch.Tensor, None, None]:
        """The batches of steps ``self.step`` to ``end`` on the training device, made
        ahead by the loader workers if there are any."""
        steps = _StepBatches(self.schedule, self.step + self.skipped, end + self.skipped)
        workers = self.hardware.loader_workers
        on_gpu = self.device.type == "cuda"
        loader = DataLoader(
            steps,
            batch_size=None,
            num_workers=workers,
            pin_memory=on_gpu,
            prefetch_factor=2 if workers else None,
        )
        for batch in loader:
            yield batch.to(self.device, non_blocking=on_gpu)

    def _train_step(self, phase: Mode, x: torch.Tensor) -> dict[str, float]:
        settings = self.train_config
        quantizer = self.autoencoder.quantizer
        if phase == "soft":
            progress = (self.step - settings.float_steps) / max(settings.soft_steps, 1)
            quantizer.set_soft_progress(progress)
        self._set_learning_rate()
        points = self._points_of_step(x.shape[0])
        with self._autocast():
            out = self.autoencoder_ddp(x, phase, points)
        z, quantized, indices, bits = out.z, out.quantized, out.indices, out.bits
        x_hat = out.x_hat.float()  # losses in float32 whatever the networks computed in
        distortion = self.modality.distortion(x_hat, x)
        reconstruction = distortion.mean()
        losses = {"reconstruction": float(reconstruction.detach())}
        losses.update(self._per_point("reconstruction", distortion.detach(), points))
        loss_g = settings.reconstruction_weight * reconstruction
        if indices is not None:
            # Straight-through gradients exert no pull towards the centers; without this
            # term the encoder's outputs drift without bound (as in VQ-VAE).
            commitment = ((z - quantized.detach()) ** 2).mean()
            loss_g = loss_g + settings.commitment_weight * commitment
            losses["commitment"] = float(commitment.detach())
            self._count(indices.cpu(), points.cpu())
        if bits is not None:
            weights = self.rate_weights.to(bits.device)[points]
            if self.autoencoder.steering is not None:
                weights = weights * self.autoencoder.steering.multiplier()
            loss_g = loss_g + (weights * bits).mean()
            losses["bits"] = float(bits.detach().mean())
            losses.update(self._per_point("bits", bits.detach(), points))
        if settings.adversarial_weight > 0 and self.step >= settings.adversarial_start:
            loss_d = self._discriminator_step(x, x_hat.detach())
            for parameter in self.discriminator.parameters():
                parameter.requires_grad_(False)
            with self._autocast():
                outputs = self.discriminator(torch.cat([x, x_hat]))
            for parameter in self.discriminator.parameters():
                parameter.requires_grad_(True)
            real, fake = _split_outputs(outputs, x.shape[0])
            adversarial = generator_adversarial_loss(fake)
            matching = feature_matching_loss(real, fake)
            loss_g = (
                loss_g
                + settings.adversarial_weight * adversarial
                + settings.feature_matching_weight * matching
            )
            losses.update(
                discriminator=float(loss_d),
                adversarial=float(adversarial.detach()),
                feature_matching=float(matching.detach()),
            )
        self.optimizer_g.zero_grad(set_to_none=True)
        loss_g.backward()
        losses["gradient_g"] = _guarded_step(self.optimizer_g, self.guard_g)
        losses["generator"] = float(loss_g.detach())
        if bits is not None and self.autoencoder.steering is not None:
            losses["rate_multiplier"] = self._steer(bits.detach(), points)
        return losses

    def _per_point(self, name: str, values: torch.Tensor, points: torch.Tensor) -> dict[str, float]:
        """The mean of ``values`` (one per item) at each operating point the batch holds,
        as ``name_0``, ``name_1``, …: what each point costs and spends (none for one)."""
        if self.point_count == 1:
            return {}
        means = {}
        for index in range(self.point_count):
            chosen = points == index
            if bool(chosen.any()):
                means[f"{name}_{index}"] = float(values[chosen].mean())
        return means

    def _steer(self, bits: torch.Tensor, points: torch.Tensor) -> float:
        """Move the rate multiplier and the point scales (core/rate_steering.py) on this
        step's bits, summed over all ranks so that every replica moves alike; return
        the multiplier the next step uses."""
        steering, gains = self.autoencoder.steering, self.autoencoder.gains
        assert steering is not None
        sums = torch.zeros(2, self.point_count, device=bits.device)
        sums[0].index_add_(0, points.to(bits.device), bits.float())
        sums[1].index_add_(0, points.to(bits.device), torch.ones_like(bits, dtype=torch.float))
        if self.dist.active:
            dist.all_reduce(sums)
        scale = gains.log_scale if gains is not None else None
        steering.update(sums[0], sums[1], scale)
        return float(steering.multiplier())

    def _points_of_step(self, batch: int) -> torch.Tensor:
        """Each item's operating point: every point in turn, shifted by one each step,
        so that each sees every crop position of the batches equally often."""
        points = (torch.arange(batch) + self.step) % self.point_count
        return points.to(self.device)

    def _count(self, indices: torch.Tensor, points: torch.Tensor) -> None:
        """Add a batch's indices to the statistics of the points its items were coded at."""
        symbols = self.counts.shape[-1]
        for index in range(self.point_count):
            chosen = indices[points == index]
            if len(chosen):
                self.counts[index] += count_indices(chosen, symbols)
                self.context_counts[index] += context_coding.count_contexts(chosen, symbols)

    def _discriminator_step(self, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            outputs = self.discriminator_ddp(torch.cat([x, x_hat]))
        real, fake = _split_outputs(outputs, x.shape[0])
        loss = discriminator_loss(real, fake)
        self.optimizer_d.zero_grad(set_to_none=True)
        loss.backward()
        _guarded_step(self.optimizer_d, self.guard_d)
        return loss.detach()

    def _autocast(self) -> AbstractContextManager[None]:
        return autocast(self.device, self.hardware.precision)

    def _set_learning_rate(self) -> None:
        """Constant, then linear decay to zero over the second half of all steps; a run
        started from a model first warms up (:data:`FINE_TUNE_WARMUP`).

        A pure function of the step, so there is no scheduler state to checkpoint.
        """
        total = self.train_config.total_steps
        half = total / 2
        factor = 1.0 if self.step < half else max(0.0, (total - self.step) / max(half, 1))
        if self.started_from is not None:
            warmup = max(1, min(FINE_TUNE_WARMUP, total // 4))
            factor *= min(1.0, (self.step + 1) / warmup)
        for optimizer in (self.optimizer_g, self.optimizer_d):
            for group in optimizer.param_groups:
                scale = group.get("lr_scale", 1.0)
                group["lr"] = self.train_config.learning_rate * factor * scale

    def _health(self, loss: float) -> tuple[bool, bool]:
        """Feed the step's generator loss to the spike detector: (diverged, calm), as
        every rank sees it (any rank's spike or unrest counts for all)."""
        self.spikes.update(loss)
        diverged, calm = self.spikes.diverged, self.spikes.calm
        if self.dist.active:
            flags = torch.tensor([float(diverged), float(not calm)], device=self.device)
            dist.all_reduce(flags, op=dist.ReduceOp.MAX)
            diverged, calm = bool(flags[0]), not bool(flags[1])
        return diverged, calm

    def _roll_back(self) -> None:
        """Restore the last checkpoint and pass over the batches trained on since then:
        replayed, the same batches from the same state would diverge again."""
        failed_at, skipped_before = self.step, self.skipped
        if not (self.restorable and self.resume()):
            raise TrainingError(
                f"training diverged at step {failed_at} before its first checkpoint; "
                "lower the learning rate"
            )
        tries = self.rollbacks.get(self.step, 0) + 1
        if tries > MAX_ROLLBACKS:
            raise TrainingError(
                f"training diverged {tries} times after the checkpoint at step {self.step}; "
                "lower the learning rate or the adversarial weight"
            )
        self.rollbacks[self.step] = tries
        self.skipped = skipped_before + failed_at - self.step
        if self.dist.is_main:
            message = f"loss spike at step {failed_at}: rolled back to step {self.step}"
            print(f"{message}, skipping {self.skipped} batches in all", file=sys.stderr, flush=True)
            event = {"step": failed_at, "event": "rollback", "to": self.step}
            self._log(json.dumps({**event, "skipped": self.skipped}))

    def _log(self, line: str) -> None:
        with (self.out_dir / LOG_NAME).open("a", encoding="utf-8") as log:
            log.write(line + "\n")

    def _loss_changes(self) -> tuple[int, ...]:
        """Steps from which the generator loss has new terms or a new scale."""
        return (*self._phase_starts(), self.train_config.adversarial_start)

    def _phase_starts(self) -> tuple[int, int]:
        settings = self.train_config
        return settings.float_steps, settings.float_steps + settings.soft_steps

    def _reset_generator_moments(self) -> None:
        """Forget Adam's moment estimates when the phase changes the gradients' scale.

        Quantization changes the size of the encoder's gradients by orders of magnitude;
        second moments adapt over ~1/(1 - beta2) steps, so stale ones would turn the
        first hard-phase steps into huge jumps that wreck the autoencoder. The gradient
        guard forgets its average norm for the same reason.
        """
        self.optimizer_g.state.clear()
        self.guard_g.reset()

    @torch.no_grad()
    def _initialise_centers(self) -> None:
        """k-means on encoder outputs of a few batches; rank 0 decides for everyone.

        Latents are taken at the point of the smallest rate weight (or the largest rate
        target), the widest spread:
        fitted to all points' latents together, k-means packed the centers densely where
        the narrow low-rate latents overlap the others, and the point trained at the
        largest weight spent the most bits.
        """
        widest = int(self.rate_weights.argmin()) if len(self.rate_weights) else 0
        if self.train_config.rate_targets:
            widest = int(torch.tensor(self.train_config.rate_targets).argmax())
        samples = []
        for i in range(KMEANS_BATCHES):
            batch = self.schedule.batch(self.step + i).to(self.device)
            points = torch.full((batch.shape[0],), widest, device=self.device)
            samples.append(self.autoencoder.latent(batch, points).flatten().cpu())
        generator = torch.Generator().manual_seed(self.train_config.seed)
        self.autoencoder.quantizer.fit_kmeans(torch.cat(samples), generator)
        if self.dist.active:
            dist.broadcast(self.autoencoder.quantizer.centers.data, src=0)
        self.centers_initialised = True

    def _card(self) -> dict[str, Any]:
        training = {**self.card.get("training", {}), "steps": self.step}
        if self.started_from is not None:
            training["started_from"] = self.started_from
        return {**self.card, "training": training}


def _guarded_step(optimizer: torch.optim.Optimizer, guard: GradientGuard) -> float:
    """Clip the optimizer's gradients (core/clipping.py) and step, unless they are not
    finite; return their norm before clipping."""
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    norm = guard.clip(parameters)
    if math.isfinite(norm):
        optimizer.step()
    return norm


def train(
    modality: Modality,
    config: ModelConfig,
    data_dir: Path,
    out_dir: Path,
    resume: bool = False,
    stop_at: int | None = None,
    on_step: Callable[[StepReport], None] | None = None,
    card: dict[str, Any] | None = None,
    hardware: Hardware | None = None,
    start_from: Model | None = None,
) -> Path | None:
    """Train a model of ``modality`` on the files under ``data_dir`` into ``out_dir``.

    A job that torchrun restarted resumes from the last checkpoint without ``resume``.
    A run with nothing to resume begins from ``start_from``'s weights when given
    (:meth:`Trainer.start_from`).
    """
    hardware = hardware or Hardware()
    if config.modality != modality.name:
        raise InputError(f"config is for modality {config.modality!r}, not {modality.name!r}")
    if config.train.speed_factors:
        raise UsageError("speed_factors is read only by benchmarks/train_speech.py's recipe")
    dataset = CropDataset.from_folder(modality, data_dir, config.train.crop)
    data: dict[str, Any] = {"folder": str(data_dir), "items": len(dataset)}
    if dataset.excluded:
        data["excluded"] = dataset.excluded
    description = {"data": data}
    with process_group(hardware.device) as distributed:
        trainer = Trainer(
            modality,
            config,
            dataset,
            out_dir,
            distributed,
            card={**description, **(card or {})},
            hardware=hardware,
        )
        trainer.resume_or_start(resume or distributed.restarted, start_from)
        return trainer.run(stop_at=stop_at, on_step=on_step)


def _can_grow(start: dict[str, Any], run: dict[str, Any]) -> bool:
    """Whether a run of network ``run`` can start from one of network ``start``: the same
    networks, or with more of what :data:`GROWABLE` names."""
    unchanged = {key: None for key in GROWABLE}
    if {**start, **unchanged} != {**run, **unchanged}:
        return False
    for key in GROWABLE:
        before, after = start.get(key), run.get(key)
        grows = isinstance(before, int) and isinstance(after, int) and after > before
        if before != after and not grows:
            return False
    return True


def _default_point_networks(model: Model) -> tuple[nn.Module, nn.Module]:
    """Copies of ``model``'s encoder and default point's generator that compute, without
    gains, what that point computes with them (its gains baked into their weights by
    :func:`fold_output_gain` and :func:`fold_input_gain`): where a run starts from."""
    point = model.point()
    encoder, generator = copy.deepcopy(model.encoder), point.generator
    input_gain = None
    if isinstance(generator, GainedGenerator):
        input_gain, generator = generator.input_gain.detach(), generator.body
    generator = copy.deepcopy(generator)
    with torch.no_grad():
        if point.latent_gain is not None:
            fold_output_gain(encoder, point.latent_gain)
        if input_gain is not None:
            fold_input_gain(generator, input_gain)
    return encoder, generator


def _latent_channels(encoder: nn.Module, dataset: CropDataset) -> int:
    """The channels of ``encoder``'s latent, from one crop (on the CPU, before the move)."""
    with torch.no_grad():
        probe = dataset.sample(0, torch.Generator().manual_seed(0)).unsqueeze(0)
        return int(encoder(probe).shape[1])


def _split_outputs(outputs: list[list[torch.Tensor]], count: int) -> tuple[list, list]:
    """The critic's features of the real and the fake halves, in float32 for the losses."""
    real = [[feature[:count].float() for feature in scale] for scale in outputs]
    fake = [[feature[count:].float() for feature in scale] for scale in outputs]
    return real, fake


class _StepBatches(Dataset):
    """Item ``i`` is the batch of step ``first + i``: a loader worker computes exactly
    the batch the training process would (:class:`BatchSchedule`)."""

    def __init__(self, schedule: BatchSchedule, first: int, end: int) -> None:
        self.schedule = schedule
        self.first = first
        self.length = max(0, end - first)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.schedule.batch(self.first + index)

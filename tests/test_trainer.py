"""The three-phase trainer: phases, checkpoints, exact resume, and DDP."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_config
from PIL import Image

from unicomp.core import trainer
from unicomp.core.checkpoint import load_model, load_state, read_card
from unicomp.core.config import merge
from unicomp.core.context_coding import context_count
from unicomp.core.data import CropDataset
from unicomp.core.networks import ResidualBlock
from unicomp.core.trainer import LOG_NAME, STATE_NAME, Hardware, Trainer, train
from unicomp.errors import InputError, UsageError

SHORT = {
    "float_steps": 8,
    "soft_steps": 8,
    "hard_steps": 8,
    "adversarial_start": 4,
    "checkpoint_every": 5,
    "log_every": 1,
    "batch_size": 4,
}


def test_a_full_run_exports_a_model_with_centers_and_tables(sensor, sensor_model: Path) -> None:
    card = read_card(sensor_model)
    model = load_model(sensor_model, sensor.build_networks)
    assert card["training"]["steps"] == tiny_config(sensor).train.total_steps
    assert card["centers"] == [float(c) for c in model.quantizer.centers.detach()]
    # k-means spread the centers over the latent range; the tables reflect real usage.
    assert len(set(card["centers"])) == model.quantizer.num_centers
    # One point per trained rate weight, none with a rate term in the projection, until
    # a release calibrates rates; the first is the default.
    weights = tiny_config(sensor).train.rate_weights
    assert [point.label for point in model.points] == [None, "trained-1"] and len(weights) == 2
    contexts = context_count(model.quantizer.num_centers, len(model.config.train.crop))
    for point in model.points:
        tables = point.search_tables
        assert point.rate_weight == 0.0
        uniform = type(tables).uniform(tables.channels, tables.num_symbols)
        assert tables.frequencies != uniform.frequencies
        # The same hard-phase indices, counted by context, give the coder its tables.
        assert point.coder.name == "rans16ctx"
        assert point.coder_tables.channels == tables.channels * contexts


def test_phases_losses_and_checkpoints_are_logged(
    sensor, sensor_data: Path, tmp_path: Path
) -> None:
    config = tiny_config(sensor, **SHORT)
    train(sensor, config, sensor_data, tmp_path)
    lines = [json.loads(line) for line in (tmp_path / LOG_NAME).read_text().splitlines()]
    assert [line["phase"] for line in lines] == ["float"] * 8 + ["soft"] * 8 + ["hard"] * 8
    assert all("commitment" in line for line in lines if line["phase"] != "float")
    assert all("discriminator" in line for line in lines if line["step"] > 4)
    assert load_state(tmp_path / STATE_NAME)["step"] == 24


def test_files_the_modality_refuses_are_left_out_and_named_in_the_card(
    sensor, sensor_data: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    shutil.copytree(sensor_data, data)
    (data / "broken.csv").write_text("not a reading\n")
    card = train(sensor, tiny_config(sensor, **SHORT), data, tmp_path / "out")
    assert card is not None
    described = read_card(card)["data"]
    assert described["items"] == len(list(sensor_data.glob("*.csv")))
    assert list(described["excluded"]) == ["broken.csv"]
    only_broken = tmp_path / "only-broken"
    only_broken.mkdir()
    (only_broken / "broken.csv").write_text("not a reading\n")
    with pytest.raises(InputError, match="no usable sensor file .*broken.csv"):
        train(sensor, tiny_config(sensor, **SHORT), only_broken, tmp_path / "none")


def test_resume_continues_exactly(sensor, sensor_data: Path, tmp_path: Path) -> None:
    config = tiny_config(sensor, **SHORT)
    straight = train(sensor, config, sensor_data, tmp_path / "straight")
    assert train(sensor, config, sensor_data, tmp_path / "split", stop_at=11) is None
    assert load_state(tmp_path / "split" / STATE_NAME)["step"] == 11
    # Loader worker processes make the very batches the training process would.
    workers = Hardware(loader_workers=2)
    resumed = train(sensor, config, sensor_data, tmp_path / "split", resume=True, hardware=workers)
    assert read_card(resumed)["weights"]["sha256"] == read_card(straight)["weights"]["sha256"]
    assert read_card(resumed)["entropy"] == read_card(straight)["entropy"]


def test_a_time_limit_stops_with_a_checkpoint_that_resumes_exactly(
    sensor, sensor_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tiny_config(sensor, **SHORT)
    straight = train(sensor, config, sensor_data, tmp_path / "straight")
    ticks = iter(range(10**6))  # a clock that moves one second whenever it is read
    monkeypatch.setattr(trainer.time, "monotonic", lambda: float(next(ticks)))
    dataset = CropDataset.from_folder(sensor, sensor_data, config.train.crop)
    assert Trainer(sensor, config, dataset, tmp_path / "timed").run(seconds=20.0) is None
    monkeypatch.undo()
    stopped_at = load_state(tmp_path / "timed" / STATE_NAME)["step"]
    assert 0 < stopped_at < config.train.total_steps
    resumed = train(sensor, config, sensor_data, tmp_path / "timed", resume=True)
    assert read_card(resumed)["weights"]["sha256"] == read_card(straight)["weights"]["sha256"]


def test_a_run_started_from_a_model_fine_tunes_its_weights_and_says_so(
    sensor, sensor_data: Path, sensor_model: Path, tmp_path: Path
) -> None:
    single = {**SHORT, "rate_weights": [], "rate_targets": []}
    released = load_model(
        train(sensor, tiny_config(sensor, **single), sensor_data, tmp_path / "released"),
        sensor.build_networks,
    )
    hard_only = {**single, "float_steps": 0, "soft_steps": 0, "adversarial_start": 0}
    config = tiny_config(sensor, **hard_only)
    dataset = CropDataset.from_folder(sensor, sensor_data, config.train.crop)
    run = Trainer(sensor, config, dataset, tmp_path / "tuned")
    run.start_from(released)
    assert load_state(tmp_path / "tuned" / STATE_NAME)["step"] == 0  # resumable at once
    assert torch.equal(run.autoencoder.quantizer.centers, released.quantizer.centers)
    encoder = run.autoencoder.encoder.state_dict()
    assert all(torch.equal(encoder[k], v) for k, v in released.encoder.state_dict().items())
    assert run.run(stop_at=3) is None
    # The released centers are kept (no k-means), and a resumed run still names its origin.
    resumed = Trainer(sensor, config, dataset, tmp_path / "tuned")
    assert resumed.resume_or_start(True, released) and resumed.step == 3  # the state wins
    card = read_card(resumed.run())
    assert card["training"]["steps"] == config.train.total_steps == 8
    assert card["training"]["started_from"] == {
        "model": released.name,
        "sha256": released.sha256,
        "steps": SHORT["float_steps"] + SHORT["soft_steps"] + SHORT["hard_steps"],
    }
    assert card["weights"]["sha256"] != released.sha256
    lines = [json.loads(line) for line in (tmp_path / "tuned" / LOG_NAME).read_text().splitlines()]
    assert {line["phase"] for line in lines} == {"hard"}
    assert all("discriminator" in line for line in lines)
    # Other networks, other centers or point gains cannot start a run.
    more_centers = merge(config, {"quantizer": {"num_centers": config.quantizer.num_centers + 1}})
    with pytest.raises(UsageError, match="other networks or centers"):
        Trainer(sensor, more_centers, dataset, tmp_path / "other").start_from(released)
    with pytest.raises(UsageError, match="only a new run"):
        resumed.start_from(released)


def test_a_run_started_from_a_gained_model_begins_at_its_default_point(
    sensor, sensor_data: Path, sensor_model: Path, tmp_path: Path
) -> None:
    gained = load_model(sensor_model, sensor.build_networks)
    point = gained.point()
    assert point.latent_gain is not None and not torch.allclose(point.latent_gain, torch.ones(1))
    config = tiny_config(sensor, **{**SHORT, "float_steps": 0, "soft_steps": 0})
    dataset = CropDataset.from_folder(sensor, sensor_data, config.train.crop)
    run = Trainer(sensor, config, dataset, tmp_path / "tuned")
    run.start_from(gained)
    # The networks now compute, without gains, what the default point computed with them.
    signal = dataset.sample(0, torch.Generator().manual_seed(0)).unsqueeze(0)
    with torch.no_grad():
        latent = point.latents(gained.encoder(signal))
        assert torch.allclose(run.autoencoder.encoder(signal), latent, rtol=1e-4, atol=1e-4)
        centers = torch.randn(latent.shape, generator=torch.Generator().manual_seed(1))
        assert torch.allclose(
            run.autoencoder.generator(centers), point.generator(centers), rtol=1e-4, atol=1e-4
        )
    assert read_card(run.run())["training"]["started_from"]["model"] == gained.name


def test_a_fine_tuning_run_warms_its_learning_rate_up_and_a_new_run_does_not(
    sensor, sensor_data: Path, sensor_model: Path, tmp_path: Path
) -> None:
    config = tiny_config(sensor, **{**SHORT, "float_steps": 0, "soft_steps": 0, "hard_steps": 40})
    full = config.train.learning_rate
    dataset = CropDataset.from_folder(sensor, sensor_data, config.train.crop)
    tuned, fresh = (Trainer(sensor, config, dataset, tmp_path / n) for n in ("tuned", "new"))
    tuned.start_from(load_model(sensor_model, sensor.build_networks))
    rates = []
    for stop in (1, 5, 10, 12):  # a quarter of the 40 steps: full from the tenth step
        tuned.run(stop_at=stop)
        rates.append(tuned.optimizer_g.param_groups[0]["lr"])
    assert rates == pytest.approx([full / 10, full / 2, full, full])
    fresh.run(stop_at=1)
    assert fresh.optimizer_g.param_groups[0]["lr"] == pytest.approx(full)


def test_a_run_grows_residual_blocks_from_a_model_and_cannot_shrink_them(
    sensor, sensor_data: Path, tmp_path: Path
) -> None:
    single = {**SHORT, "rate_weights": [], "rate_targets": []}
    released = load_model(
        train(sensor, tiny_config(sensor, **single), sensor_data, tmp_path / "released"),
        sensor.build_networks,
    )
    base = tiny_config(sensor, **{**single, "float_steps": 0, "soft_steps": 0})
    blocks = int(base.network["residual_blocks"])
    deeper = merge(base, {"network": {"residual_blocks": blocks + 1}})
    dataset = CropDataset.from_folder(sensor, sensor_data, base.train.crop)
    run = Trainer(sensor, deeper, dataset, tmp_path / "deeper")
    run.start_from(released)
    stacks = (
        (run.autoencoder.encoder, released.encoder),
        (run.autoencoder.generator, released.point().generator),
    )
    for grown, trained in stacks:
        assert torch.equal(grown[-1].weight, trained[-1].weight)
        old = [layer for layer in trained if isinstance(layer, ResidualBlock)]
        new = [layer for layer in grown if isinstance(layer, ResidualBlock)]
        assert len(new) == len(old) // blocks * (blocks + 1)
        for stage in range(len(old) // blocks):
            kept = new[stage * (blocks + 1) : stage * (blocks + 1) + blocks]
            added = new[stage * (blocks + 1) + blocks]
            for a, b in zip(kept, old[stage * blocks : (stage + 1) * blocks], strict=True):
                assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())
            first = added.body[0]
            x = torch.randn(2, first.in_channels, *[9] * (first.weight.dim() - 2))
            assert torch.allclose(added(x), torch.nn.functional.leaky_relu(x, 0.2))
    card_path = run.run()
    card = read_card(card_path)
    assert card["config"]["network"]["residual_blocks"] == blocks + 1
    assert card["training"]["started_from"]["model"] == released.name
    # A model cannot start a run with fewer blocks or other widths.
    grown = load_model(card_path, sensor.build_networks)
    with pytest.raises(UsageError, match="only residual_blocks and latent_channels may grow"):
        Trainer(sensor, base, dataset, tmp_path / "shrunk").start_from(grown)
    wider = merge(deeper, {"network": {"widths": [w + 1 for w in deeper.network["widths"]]}})
    with pytest.raises(UsageError, match="other networks"):
        Trainer(sensor, wider, dataset, tmp_path / "wider").start_from(released)


def test_a_run_widens_the_latent_of_a_model_and_starts_on_its_function(
    sensor, sensor_data: Path, sensor_model: Path, tmp_path: Path
) -> None:
    gained = load_model(sensor_model, sensor.build_networks)
    point = gained.point()
    base = tiny_config(sensor, **{**SHORT, "float_steps": 0, "soft_steps": 0})
    channels = int(base.network["latent_channels"])
    wider = merge(base, {"network": {"latent_channels": channels + 3}})
    dataset = CropDataset.from_folder(sensor, sensor_data, wider.train.crop)
    run = Trainer(sensor, wider, dataset, tmp_path / "wider")
    run.start_from(gained)
    signal = dataset.sample(0, torch.Generator().manual_seed(0)).unsqueeze(0)
    with torch.no_grad():
        latent = run.autoencoder.encoder(signal)
        # The model's channels first, as its default point scaled them; the new ones
        # carry something from the start.
        assert latent.shape[1] == channels + 3
        expected = point.latents(gained.encoder(signal))
        assert torch.allclose(latent[:, :channels], expected, rtol=1e-4, atol=1e-4)
        assert latent[:, channels:].abs().amax() > 0
        # The generator ignores the new channels until it learns to use them.
        noise = torch.Generator().manual_seed(1)
        old = torch.randn(expected.shape, generator=noise)
        new = torch.randn((1, 3, *expected.shape[2:]), generator=noise)
        assert torch.allclose(
            run.autoencoder.generator(torch.cat([old, new], dim=1)),
            point.generator(old),
            rtol=1e-4,
            atol=1e-4,
        )
    card = read_card(run.run())
    assert card["config"]["network"]["latent_channels"] == channels + 3
    assert card["training"]["started_from"]["model"] == gained.name
    # Fewer channels than the model's cannot start from it.
    narrower = merge(base, {"network": {"latent_channels": channels - 1}})
    with pytest.raises(UsageError, match="other networks"):
        Trainer(sensor, narrower, dataset, tmp_path / "narrower").start_from(gained)


def test_bf16_trains_under_autocast_with_float32_losses_and_centers(
    sensor, sensor_data: Path, tmp_path: Path
) -> None:
    config = tiny_config(sensor, **SHORT)
    card = train(sensor, config, sensor_data, tmp_path, hardware=Hardware(precision="bf16"))
    lines = [json.loads(line) for line in (tmp_path / LOG_NAME).read_text().splitlines()]
    losses = [value for line in lines for key, value in line.items() if key != "phase"]
    assert len(lines) == 24 and np.isfinite(losses).all()
    model = load_model(card, sensor.build_networks)
    assert model.quantizer.centers.dtype == torch.float32
    assert len(set(read_card(card)["centers"])) == model.quantizer.num_centers


def test_ddp_keeps_replicas_identical_and_a_restarted_job_resumes(
    sensor_data: Path, tmp_path: Path
) -> None:
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    result = _torchrun("plain", sensor_data, straight)
    assert result.returncode == 0, _worker_errors(result.stderr)
    rank0 = (straight / "rank0.txt").read_text().split()
    rank1 = (straight / "rank1.txt").read_text().split()
    assert rank0[0] == rank1[0] == "2"
    assert rank0[1] == rank1[1]  # identical weights after DDP training
    assert rank0[2] != rank1[2]  # but each rank saw its own share of the data
    assert (straight / "sensor-default.json").is_file()  # rank 0 exported the model

    # Rank 0 dies at step 9 of the first attempt; torchrun restarts both ranks, which
    # resume from the checkpoint of step 6 and end where the uninterrupted run ended.
    result = _torchrun("elastic", sensor_data, crashed, "--max-restarts", "1")
    assert result.returncode == 0, _worker_errors(result.stderr)
    assert sorted((crashed / "attempts.txt").read_text().splitlines()) == ["0 1", "1 1"]
    first_attempt = [json.loads(line)["step"] for line in (crashed / LOG_NAME).open()]
    assert first_attempt.count(7) == 2  # steps 7 to 9 ran twice: the resume was real
    weights = [read_card(out / "sensor-default.json")["weights"] for out in (straight, crashed)]
    assert weights[0] == weights[1]


def test_a_spike_on_one_rank_rolls_every_rank_back_together(
    sensor_data: Path, tmp_path: Path
) -> None:
    result = _torchrun("spike", sensor_data, tmp_path)
    assert result.returncode == 0, _worker_errors(result.stderr)
    rank0 = (tmp_path / "rank0.txt").read_text().split()
    rank1 = (tmp_path / "rank1.txt").read_text().split()
    assert rank0[1] == rank1[1]  # rank 1's loss never spiked, yet it followed
    lines = [json.loads(line) for line in (tmp_path / LOG_NAME).open()]
    assert [line for line in lines if "event" in line] == [
        {"step": 26, "event": "rollback", "to": 20, "skipped": 6}
    ]
    assert load_state(tmp_path / STATE_NAME)["step"] == 36


def test_a_failing_distributed_run_names_each_rank_and_does_not_abort(tmp_path: Path) -> None:
    data, out = tmp_path / "photos", tmp_path / "run"
    data.mkdir()
    out.mkdir()
    rng = np.random.default_rng(0)
    for index in range(2):
        pixels = rng.integers(0, 256, (160, 160, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(data / f"photo{index}.png")
    (out / f"{STATE_NAME}.json").write_text("{not json", encoding="utf-8")
    result = subprocess.run(
        [
            *(sys.executable, "-m", "torch.distributed.run", "--standalone"),
            *("--nproc_per_node", "2", "-m", "unicomp", "train", "--modality", "image"),
            *("--data", str(data), "--out", str(out), "--resume", "--quiet"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    for rank in (0, 1):
        lines = [line for line in result.stderr.splitlines() if line.startswith(f"rank {rank}:")]
        assert len(lines) == 1, result.stderr[-3000:]
        assert "training state" in lines[0] and "cannot be read" in lines[0]
    assert "terminate called" not in result.stderr
    assert "SIGABRT" not in result.stderr


def _worker_errors(stderr: str) -> str:
    """What the ranks themselves said before torchrun's summary, which alone names no
    cause (the summary follows, shortened)."""
    own = [line for line in stderr.splitlines() if "torch/distributed/elastic" not in line]
    return "\n".join(own[:40]) + "\n...\n" + stderr[-1500:]


def _torchrun(mode: str, data: Path, out: Path, *options: str) -> subprocess.CompletedProcess:
    worker = Path(__file__).with_name("ddp_worker.py")
    return subprocess.run(
        [
            *(sys.executable, "-m", "torch.distributed.run", "--standalone"),
            *("--nproc_per_node", "2", *options, str(worker), mode, str(data), str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )

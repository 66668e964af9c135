"""The latent searches (straight-through steps and ADMM) against their ablations, on a
trained model."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

from unicomp.core import admm
from unicomp.core.admm import admm_search, backprop_then_project, project
from unicomp.core.checkpoint import load_model
from unicomp.core.coders import CONTEXT
from unicomp.core.config import AdmmConfig
from unicomp.core.rate_control import (
    bits_per_element,
    find_operating_point,
    fit_point_context_tables,
)
from unicomp.core.search import SEARCHES, straight_through_search
from unicomp.errors import UsageError


@pytest.fixture(scope="module")
def searched(sensor, sensor_model: Path, sensor_data: Path):
    model = load_model(sensor_model, sensor.build_networks)
    files = sorted(sensor_data.glob("*.csv"))[:4]
    x = torch.stack([sensor.analysis(sensor.load(f))[0] for f in files])
    with torch.no_grad():
        z0 = model.point().latents(model.encoder(x))
    return model, x, z0


def test_admm_beats_encoder_output_and_backprop_then_projection(sensor, searched) -> None:
    model, x, z0 = searched
    config = AdmmConfig(
        method="admm", iterations=30, inner_steps=4, learning_rate=0.05, rho=0.05, patience=1000
    )
    encoder_only = admm_search(
        model.point().generator,
        sensor.distortion,
        x,
        z0,
        quantizer=model.quantizer,
        config=AdmmConfig(iterations=0),
    )
    admm = admm_search(
        model.point().generator, sensor.distortion, x, z0, quantizer=model.quantizer, config=config
    )
    naive = backprop_then_project(
        model.point().generator,
        sensor.distortion,
        x,
        z0,
        model.quantizer,
        steps=config.iterations * config.inner_steps,
        learning_rate=config.learning_rate,
    )
    d_encoder = float(encoder_only.distortion.mean())
    d_admm = float(admm.distortion.mean())
    d_naive = float(naive.distortion.mean())
    print(
        f"\nMSE encoder-only {d_encoder:.5f}  backprop+projection {d_naive:.5f}  ADMM {d_admm:.5f}"
    )
    assert d_admm < 0.9 * d_encoder
    assert d_admm < 0.95 * d_naive
    # Every transmitted value sits on a center and is scored on exactly those centers.
    decoded = model.point().generator(model.quantizer.dequantize(admm.indices))
    assert torch.allclose(sensor.distortion(decoded, x), admm.distortion, rtol=1e-4)


@pytest.mark.parametrize("method", sorted(SEARCHES))
def test_search_never_returns_worse_than_the_encoder_output(sensor, searched, method: str) -> None:
    model, x, z0 = searched
    start = admm_search(
        model.point().generator,
        sensor.distortion,
        x,
        z0,
        quantizer=model.quantizer,
        config=AdmmConfig(iterations=0),
    )
    for rho, learning_rate in ((1e-3, 0.01), (0.2, 0.05), (50.0, 0.5)):
        result = SEARCHES[method](
            model.point().generator,
            sensor.distortion,
            x,
            z0,
            quantizer=model.quantizer,
            config=AdmmConfig(iterations=5, rho=rho, learning_rate=learning_rate),
        )
        assert (result.distortion <= start.distortion).all()
        # The decode it returns is the generator's output for the indices it returns.
        with torch.no_grad():
            decoded = model.point().generator(model.quantizer.dequantize(result.indices))
        assert torch.allclose(result.decoded, decoded, atol=1e-5)
        assert torch.allclose(sensor.distortion(result.decoded, x), result.distortion)


def test_rate_weight_trades_distortion_for_bits(sensor, searched) -> None:
    model, x, z0 = searched
    centers = model.quantizer.centers.detach()
    free_rate = bits_per_element([z0], centers, model.point().search_tables, 0.0)
    weight, tables = find_operating_point(
        [z0], centers, model.point().search_tables, 0.5 * free_rate
    )
    assert bits_per_element([z0], centers, tables, weight) == pytest.approx(
        0.5 * free_rate, rel=0.1
    )

    def search(rate_weight: float, point_tables):
        result = admm_search(
            model.point().generator,
            sensor.distortion,
            x,
            z0,
            quantizer=model.quantizer,
            config=AdmmConfig(iterations=10),
            rate_weight=rate_weight,
            bits=point_tables.bits(),
        )
        cost = sum(point_tables.estimate_bits(item) for item in result.indices)
        return cost / z0.numel(), float(result.distortion.mean())

    rate_free, distortion_free = search(0.0, model.point().search_tables)
    rate_half, distortion_half = search(weight, tables)
    assert rate_half < 0.6 * rate_free
    assert distortion_half > distortion_free


@pytest.mark.parametrize("fraction", [0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
def test_operating_point_never_costs_more_than_its_target(searched, fraction: float) -> None:
    """Bisection stops on whichever side of the target its last step fell; the point
    returned is the cheapest-distortion one that meets the target."""
    model, _, z0 = searched
    centers = model.quantizer.centers.detach()
    target = fraction * bits_per_element([z0], centers, model.point().search_tables, 0.0)
    weight, tables = find_operating_point(
        [z0], centers, model.point().search_tables, target, search_steps=6
    )
    assert bits_per_element([z0], centers, tables, weight) <= target


@pytest.mark.parametrize("method", sorted(SEARCHES))
@pytest.mark.parametrize("coder", ["per-channel", "context"])
def test_search_at_a_point_prices_bits_in_signal_distortion(
    sensor, searched, coder, method: str
) -> None:
    """The best iterate is judged by distortion plus the bits its coder will spend."""
    model, x, z0 = searched
    centers = model.quantizer.centers.detach()
    free_rate = bits_per_element([z0], centers, model.point().search_tables, 0.0)
    weight, tables = find_operating_point(
        [z0], centers, model.point().search_tables, 0.5 * free_rate
    )
    if coder == "context":
        contexts = fit_point_context_tables([z0], centers, tables, weight)
        rate = functools.partial(CONTEXT.bits_per_element, tables=contexts)
    else:
        rate = None

    def search(iterations: int):
        return SEARCHES[method](
            model.point().generator,
            sensor.distortion,
            x,
            z0,
            quantizer=model.quantizer,
            config=AdmmConfig(iterations=iterations),
            rate_weight=weight,
            bits=tables.bits(),
            rate=rate,
        )

    start, found = search(0), search(10)
    # The price of a bit per element: the rate weight times signal per latent distortion.
    latent_error = ((z0 - centers[start.indices]) ** 2).flatten(1).mean(dim=1)
    price = weight * start.distortion / latent_error

    def cost(result) -> torch.Tensor:
        if coder == "context":
            bits = torch.tensor([CONTEXT.estimate_bits(q, contexts) for q in result.indices])
        else:
            bits = torch.tensor([tables.estimate_bits(item) for item in result.indices])
        return result.distortion + price * bits / z0[0].numel()

    assert (cost(found) <= cost(start) + 1e-6).all()
    assert (cost(found) < cost(start)).any()


@pytest.mark.parametrize("method", sorted(SEARCHES))
def test_zero_iterations_is_plain_projection(sensor, searched, method: str) -> None:
    model, x, z0 = searched
    result = SEARCHES[method](
        model.point().generator,
        sensor.distortion,
        x,
        z0,
        quantizer=model.quantizer,
        config=AdmmConfig(iterations=0),
    )
    assert torch.equal(result.indices, project(z0, model.quantizer.centers.detach()))
    assert result.iterations == 0


@pytest.mark.parametrize("method", sorted(SEARCHES))
def test_time_budget_stops_the_search(sensor, searched, method: str) -> None:
    model, x, z0 = searched
    result = SEARCHES[method](
        model.point().generator,
        sensor.distortion,
        x,
        z0,
        quantizer=model.quantizer,
        config=AdmmConfig(iterations=10_000, patience=10_000, time_budget=0.0),
    )
    assert result.iterations == 1


def test_time_budget_stops_before_an_iteration_that_would_pass_it(monkeypatch) -> None:
    monkeypatch.setattr(admm.time, "monotonic", lambda: 103.0)
    # Three iterations took 3 s since 100.0: a fourth would end at 4 s.
    assert admm.out_of_time(AdmmConfig(time_budget=3.9), 100.0, 3)
    assert not admm.out_of_time(AdmmConfig(time_budget=4.1), 100.0, 3)
    assert not admm.out_of_time(AdmmConfig(time_budget=None), 0.0, 3)


@pytest.mark.parametrize("method", sorted(SEARCHES))
def test_generator_is_left_as_it_was(sensor, searched, method: str) -> None:
    model, x, z0 = searched
    model.point().generator.train()
    before = {k: v.clone() for k, v in model.point().generator.state_dict().items()}
    SEARCHES[method](
        model.point().generator,
        sensor.distortion,
        x,
        z0,
        quantizer=model.quantizer,
        config=AdmmConfig(iterations=3),
    )
    assert model.point().generator.training
    assert all(p.requires_grad for p in model.point().generator.parameters())
    after = model.point().generator.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    model.point().generator.eval()


def test_straight_through_steps_beat_the_encoder_output_and_admm(sensor, searched) -> None:
    """The generator was trained on centers only: stepping z by the straight-through
    gradient of the projection's distortion finds lower distortions than ADMM's steps
    on the generator off the centers, in the same number of decodes."""
    model, x, z0 = searched
    generator, quantizer = model.point().generator, model.quantizer
    start = admm_search(
        generator, sensor.distortion, x, z0, quantizer=quantizer, config=AdmmConfig(iterations=0)
    )
    admm = admm_search(
        generator,
        sensor.distortion,
        x,
        z0,
        quantizer=quantizer,
        config=AdmmConfig(method="admm", iterations=15, inner_steps=1, rho=0.05),
    )
    steps = straight_through_search(
        generator,
        sensor.distortion,
        x,
        z0,
        quantizer=quantizer,
        config=AdmmConfig(iterations=30),
    )
    d_start, d_admm, d_steps = (float(r.distortion.mean()) for r in (start, admm, steps))
    print(f"\nMSE encoder-only {d_start:.5f}  ADMM {d_admm:.5f}  straight-through {d_steps:.5f}")
    assert d_steps < 0.9 * d_start
    assert d_steps < d_admm
    decoded = generator(quantizer.dequantize(steps.indices))
    assert torch.allclose(sensor.distortion(decoded, x), steps.distortion, rtol=1e-4)


def test_only_admissible_iterates_replace_the_start(sensor, searched) -> None:
    model, x, z0 = searched
    nothing = lambda indices: torch.zeros(indices.shape[0], dtype=torch.bool)  # noqa: E731
    result = straight_through_search(
        model.point().generator,
        sensor.distortion,
        x,
        z0,
        quantizer=model.quantizer,
        config=AdmmConfig(iterations=5),
        admissible=nothing,
    )
    assert torch.equal(result.indices, project(z0, model.quantizer.centers.detach()))
    assert result.iterations == 5


def test_annealed_steps_shrink_from_the_first_size_to_the_last_at_every_effort() -> None:
    config = AdmmConfig(iterations=7, learning_rate=0.2, final_learning_rate=0.003)
    sizes = [config.step_size(i) for i in range(1, 8)]
    assert sizes[0] == pytest.approx(0.2) and sizes[-1] == pytest.approx(0.003)
    assert all(later < earlier for earlier, later in zip(sizes, sizes[1:], strict=False))
    ratios = [later / earlier for earlier, later in zip(sizes, sizes[1:], strict=False)]
    assert max(ratios) == pytest.approx(min(ratios))  # geometric
    # A longer search repeats the default's schedule (warm restarts), so its first
    # iterations are the default search's.
    best = config.at_effort("best", None)
    assert best.iterations > config.iterations
    assert [best.step_size(i) for i in range(1, 8)] == pytest.approx(sizes)
    assert best.step_size(8) == pytest.approx(0.2)
    assert best.step_size(best.iterations) == pytest.approx(0.003)
    assert AdmmConfig(learning_rate=0.05).step_size(5) == 0.05  # no final size: constant
    with pytest.raises(UsageError):
        AdmmConfig(final_learning_rate=0.0)


def test_step_seconds_turn_time_budgets_into_iterations_chosen_from_the_size() -> None:
    config = AdmmConfig(iterations=7, time_budget=4.5, best_seconds=150.0, step_seconds=1.5)
    small = config.at_effort("default", 0.4)  # 4.5 s afford 7.5 steps of 0.6 s
    assert (small.iterations, small.time_budget) == (7, None)
    assert config.at_effort("default", 1.0).iterations == 3
    assert config.at_effort("default", 24.0).iterations == 0  # the encoder's output
    best = config.at_effort("best", 24.0)  # 150 s per megapixel afford 100 steps
    assert (best.iterations, best.time_budget) == (70, None)
    assert AdmmConfig(iterations=7, time_budget=4.5).at_effort("default", 24.0).time_budget == 4.5
    assert config.at_effort("default", None).time_budget == 4.5  # no size: the clock


def test_annealed_search_never_returns_worse_than_the_encoder_output(sensor, searched) -> None:
    model, x, z0 = searched
    generator, quantizer = model.point().generator, model.quantizer
    start = straight_through_search(
        generator, sensor.distortion, x, z0, quantizer=quantizer, config=AdmmConfig(iterations=0)
    )
    annealed = straight_through_search(
        generator,
        sensor.distortion,
        x,
        z0,
        quantizer=quantizer,
        config=AdmmConfig(iterations=10, learning_rate=0.5, final_learning_rate=0.01),
    )
    assert (annealed.distortion <= start.distortion).all()
    assert (annealed.distortion < start.distortion).any()

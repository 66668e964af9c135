"""The per-signal latent search the codec runs: straight-through steps, or ADMM.

The generator's last training phase only ever saw latents on the centers, with the
gradient passed straight through the quantizer to the encoder (core/quantizer.py). The
straight-through search refines a signal's latent the same way: each iteration projects
z onto the centers, decodes that projection — the very latent a file would carry — and
steps z along the straight-through gradient of its distortion, so one forward and
backward pass both scores an iterate and moves z. ADMM (core/admm.py) instead follows
the gradient of the generator at z itself, off the centers, where the generator was not
trained, and scores each projection with a second forward pass.

Measured on six train photos at 0.12 bpp (image-v1, every file within 3 % under the
rate; benchmarks/tune_admm.py), over the encoder's projected output: ADMM gained
+0.24 dB PSNR, +0.0006 MS-SSIM and -0.27 dB chroma PSNR; 8 straight-through steps of
0.05 rms gained +1.80 dB, +0.026 and +2.0 dB. On six 10 s train clips at 2 kbit/s
(speech-v1): ADMM +0.016 PESQ-WB and +0.005 STOI, 20 steps of 0.008 +0.10 and +0.012.
Larger steps overshoot (image 0.3: +0.25 dB; speech 0.3: nothing better than the
start); adding ADMM's penalty and dual to these steps found nothing better either.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn

from unicomp.core.admm import (
    Distortion,
    Incumbent,
    SearchResult,
    admm_search,
    frozen,
    out_of_time,
    per_item_unit_rms,
    project,
    project_iterate,
)
from unicomp.core.config import AdmmConfig
from unicomp.core.quantizer import Quantizer

__all__ = ["SEARCHES", "straight_through_search"]


def straight_through_search(
    generator: nn.Module,
    distortion: Distortion,
    x: torch.Tensor,
    z0: torch.Tensor,
    *,
    quantizer: Quantizer,
    config: AdmmConfig,
    rate_weight: float = 0.0,
    bits: torch.Tensor | None = None,
    rate: Callable[[torch.Tensor], torch.Tensor] | None = None,
    admissible: Callable[[torch.Tensor], torch.Tensor] | None = None,
    projector: Callable[[torch.Tensor], torch.Tensor] | None = None,
    on_iteration: Callable[[int, torch.Tensor], None] | None = None,
) -> SearchResult:
    """Search center indices for a batch by ``config.iterations`` straight-through
    steps of ``config.step_size`` rms each; the arguments are
    :func:`~unicomp.core.admm.admm_search`'s, whose ``rho`` and ``inner_steps`` do
    not apply. It runs every iteration (within ``config.time_budget``): small steps
    change few indices at first, so a stale start says little about what follows."""
    centers = quantizer.centers.detach()
    started = time.monotonic()
    arguments = (generator, distortion, x, z0, centers, bits, rate_weight, rate, admissible)
    if config.iterations <= 0:
        return Incumbent(*arguments).result(0)
    z = z0.detach().clone().requires_grad_(True)

    def scored(indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The projection's output and value, and z's gradient passed straight through."""
        decoded = generator(centers[indices] + (z - z.detach()))
        value = distortion(decoded, x)
        (gradient,) = torch.autograd.grad(value.sum(), z)
        return decoded.detach(), value.detach(), gradient

    with frozen(generator):
        # The first iterate is the start, the projection of z0: one pass both scores it
        # for the incumbent and gives the first step.
        indices = project(z0.detach(), centers, bits, rate_weight)
        decoded, value, gradient = scored(indices)
        incumbent = Incumbent(*arguments, start=(indices, decoded, value))
        for iteration in range(1, config.iterations + 1):
            if iteration > 1:
                with torch.no_grad():
                    indices = project_iterate(z, centers, bits, incumbent.rate_weight, projector)
                decoded, value, gradient = scored(indices)
                incumbent.offer(indices, value, decoded)
            with torch.no_grad():
                z -= config.step_size(iteration) * per_item_unit_rms(gradient)
            if on_iteration is not None:
                on_iteration(iteration, incumbent.cost)
            if out_of_time(config, started, iteration):
                break
    return incumbent.result(iteration)


#: The searches an AdmmConfig's ``method`` names, all called like
#: :func:`~unicomp.core.admm.admm_search`.
SEARCHES: dict[str, Callable[..., SearchResult]] = {
    "straight-through": straight_through_search,
    "admm": admm_search,
}

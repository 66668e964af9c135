"""GAN losses: least-squares adversarial terms and discriminator feature matching.

Critic outputs are lists (one per scale) of feature lists whose last item is the patch
score map, as produced by :class:`unicomp.core.networks.MultiScaleDiscriminator`.
"""

from __future__ import annotations

import functools
import operator

import torch

CriticOutput = list[list[torch.Tensor]]


def generator_adversarial_loss(fake: CriticOutput) -> torch.Tensor:
    """LSGAN generator term: push the critic's score of x̂ towards 1 at every scale."""
    return _mean([((scale[-1] - 1.0) ** 2).mean() for scale in fake])


def discriminator_loss(real: CriticOutput, fake: CriticOutput) -> torch.Tensor:
    """LSGAN critic term: real patches towards 1, generated ones towards 0."""
    return _mean(
        [((r[-1] - 1.0) ** 2).mean() + (f[-1] ** 2).mean() for r, f in zip(real, fake, strict=True)]
    )


def feature_matching_loss(real: CriticOutput, fake: CriticOutput) -> torch.Tensor:
    """Mean L1 distance of the critic's intermediate features for x and x̂.

    Stabilises GAN training and acts as a learnt perceptual distance; the real features
    are constants here, so only the generator is pushed.
    """
    terms = [
        (f - r.detach()).abs().mean()
        for real_scale, fake_scale in zip(real, fake, strict=True)
        for r, f in zip(real_scale[:-1], fake_scale[:-1], strict=True)
    ]
    return _mean(terms)


def _mean(terms: list[torch.Tensor]) -> torch.Tensor:
    """The mean of scalar loss terms, added in order (as ``sum`` adds them); zero if there
    are none (a critic that returns no intermediate features)."""
    if not terms:
        return torch.zeros(())
    return functools.reduce(operator.add, terms) / len(terms)

"""The rate a training step pays: bits of the indices as the context coder counts them.

The released coder (core/context_coding.py) codes each element with the table of its
channel and of its preceding neighbours' indices. Training prices latents the same way:
one table per (operating point, channel, context). Every element costs the code
length of its hard index, as in the file, with the gradient of its soft assignment to
the centers (core/quantizer.py) times the table's code lengths, so that the encoder
feels which centers are cheap. (The soft cost itself overstates the rate wherever
latents lie between centers: 2.6 bits per element for a point whose files held 0.3.)
Contexts come from the hard indices, as the coder sees them.

The tables are not learned by gradient but counted: a moving average of the hard
indices' statistics, mixed with the channel's own (as the released tables are,
core/context_coding.py). Gradient-learned tables start uniform, where no center is
cheaper than another, and moved a few hundredths of a bit per hundred steps, so the
rate term pulled on nothing for the first thousand steps of a run.
"""

from __future__ import annotations

import torch
from torch import nn

from unicomp.core.context_coding import context_count, contexts, smoothed_counts

#: Each step's statistics weigh this much in the moving average (~1/DECAY steps' memory).
DECAY = 0.02


class ContextRateModel(nn.Module):
    """Counted context tables of ``points`` operating points for a latent of
    ``channels`` channels over ``axes`` signal axes and ``num_symbols`` centers."""

    def __init__(self, points: int, channels: int, axes: int, num_symbols: int) -> None:
        super().__init__()
        self.num_symbols = num_symbols
        self.contexts = context_count(num_symbols, axes)
        shape = (points, channels, self.contexts, num_symbols)
        #: Moving average of each step's index counts.
        self.counts: torch.Tensor
        self.register_buffer("counts", torch.zeros(shape))

    def forward(
        self, assignment: torch.Tensor, indices: torch.Tensor, points: torch.Tensor
    ) -> torch.Tensor:
        """Mean bits per element of each item (batch,) of a batch: ``assignment``
        (batch, channels, *axes, K) soft probabilities, ``indices`` (batch, channels,
        *axes) the hard ones, ``points`` (batch,) each item's operating point. In
        training mode the tables first take in the batch's counts."""
        cells = self._cells(indices)
        if self.training:
            self._update(cells, points)
        lengths = self.code_lengths().flatten(1, 2)  # (points, channels * contexts, K)
        point = points.reshape(-1, *(1,) * (indices.dim() - 1))
        rows = torch.div(cells, self.num_symbols, rounding_mode="floor")
        element = lengths[point, rows]  # (batch, channels, *axes, K)
        soft = (assignment.float() * element).sum(-1)
        hard = element.gather(-1, indices.long().unsqueeze(-1)).squeeze(-1)
        # The value the coder would spend, the gradient of the soft assignment.
        return (hard + soft - soft.detach()).flatten(1).mean(1)

    def code_lengths(self) -> torch.Tensor:
        """Bits of every (point, channel, context, symbol), from the counts of about
        the last 1/DECAY steps, each context smoothed towards its channel's
        distribution as the released tables are (core/context_coding.py)."""
        mixed = smoothed_counts(self.counts / DECAY)
        return -torch.log2(mixed / mixed.sum(-1, keepdim=True))

    def _cells(self, indices: torch.Tensor) -> torch.Tensor:
        """Each element's flat (channel, context, symbol) cell, shape of ``indices``."""
        context = torch.stack([contexts(item, self.num_symbols) for item in indices.long()])
        channel = torch.arange(indices.shape[1], device=indices.device)
        channel = channel.reshape(1, -1, *(1,) * (indices.dim() - 2))
        return (channel * self.contexts + context) * self.num_symbols + indices.long()

    @torch.no_grad()
    def _update(self, cells: torch.Tensor, points: torch.Tensor) -> None:
        """Move each point's average towards this batch's counts of its items."""
        size = self.counts[0].numel()
        for point in range(self.counts.shape[0]):
            chosen = cells[points == point].reshape(-1)
            if chosen.numel():
                counts = torch.bincount(chosen, minlength=size).float()
                self.counts[point].lerp_(counts.reshape(self.counts[point].shape), DECAY)

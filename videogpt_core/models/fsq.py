"""Finite scalar quantisation (FSQ, Mentzer et al. 2023): each channel of the encoder's output is bounded and
rounded to one of a few levels; a code is the tuple of levels, so the codebook is a fixed grid that needs no
learning, no commitment loss and no dead-code restart, and every code stays reachable.

The same interface as the EMA `Codebook` (nearest / lookup / forward, an `embeddings` table), so the VQ-VAE,
the prior (which reads the code vectors) and training use either one unchanged.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

# Bounds a hair inside the outermost levels, so tanh never has to reach +-1 to give them.
_BOUND_MARGIN = 1e-3


def fsq_codebook_shape(levels) -> tuple[int, int]:
    """(n_codes, embedding_dim) of FSQ with these levels a channel, or a ValueError for levels it cannot use."""
    levels = tuple(int(n) for n in levels)
    if not levels or min(levels) < 3:
        raise ValueError(f"FSQ levels must be three or more per channel, got {levels}")
    return math.prod(levels), len(levels)


class FiniteScalarQuantizer(nn.Module):
    def __init__(self, levels: tuple[int, ...]):
        super().__init__()
        self.n_codes, self.embedding_dim = fsq_codebook_shape(levels)
        self.levels = tuple(int(n) for n in levels)
        levels_tensor = torch.tensor(self.levels, dtype=torch.float32)
        half_width = (levels_tensor // 2)  # levels are -half_width .. levels-1-half_width (even: one fewer on top)
        basis = torch.cumprod(torch.tensor((1,) + self.levels[:-1]), 0)
        # The bound: tanh scaled to just inside the outer levels; even counts sit at half-integers before the
        # offset, and the shift puts an input of 0 on level 0.
        half = (levels_tensor - 1) * (1 - _BOUND_MARGIN) / 2
        offset = (levels_tensor % 2 == 0).float() * 0.5
        self.register_buffer("_levels", levels_tensor, persistent=False)
        self.register_buffer("_half_width", half_width, persistent=False)
        self.register_buffer("_basis", basis, persistent=False)
        self.register_buffer("_half", half, persistent=False)
        self.register_buffer("_offset", offset, persistent=False)
        self.register_buffer("_shift", torch.atanh(offset / half), persistent=False)
        # The grid itself, for the prior's input vectors and lookups; derived from the levels, so not saved.
        self.register_buffer("embeddings", self._vectors(torch.arange(self.n_codes)), persistent=False)

    @property
    def initialized(self) -> bool:
        return True  # nothing to learn

    def _rounded(self, z: torch.Tensor) -> torch.Tensor:
        """z (..., D) -> integer levels (..., D) as floats, with a straight-through gradient."""
        bounded = torch.tanh(z.float() + self._shift) * self._half - self._offset
        return bounded + (bounded.round() - bounded).detach()

    def _vectors(self, codes: torch.Tensor) -> torch.Tensor:
        digits = (codes[..., None] // self._basis) % self._levels.long()
        return (digits - self._half_width) / self._half_width

    def _codes(self, rounded: torch.Tensor) -> torch.Tensor:
        return ((rounded.detach() + self._half_width).long() * self._basis).sum(-1)

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Code of each row of flat (N, D), the encoder's output before bounding."""
        return self._codes(self._rounded(flat))

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, t, h, w) -> code vectors (B, D, t, h, w) in [-1, 1]."""
        return self._vectors(codes).movedim(-1, 1)

    def forward(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """z: encoder output (B, D, t, h, w) -> the quantised vectors (gradients pass straight through)."""
        rounded = self._rounded(z.movedim(1, -1))
        codes = self._codes(rounded)
        counts = torch.bincount(codes.flatten(), minlength=self.n_codes).float()
        probs = counts / counts.sum()
        perplexity = torch.exp(-(probs * torch.log(probs + 1e-10)).sum())
        return dict(
            quantized=(rounded / self._half_width).movedim(-1, 1).to(z.dtype),
            codes=codes,
            commitment_loss=z.new_zeros(()),
            perplexity=perplexity,
            usage=(counts > 0).float().mean(),
        )

"""The VQ-VAE's codebook: nearest-neighbour quantisation with EMA updates, data-dependent init and
dead-code restart, synchronised across processes under torch.distributed (as the reference)."""
from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


class Codebook(nn.Module):
    def __init__(self, n_codes: int, embedding_dim: int, decay: float = 0.99, commitment_cost: float = 0.25):
        super().__init__()
        self.n_codes = n_codes
        self.embedding_dim = embedding_dim
        self.decay = decay
        self.commitment_cost = commitment_cost
        self.register_buffer("embeddings", torch.randn(n_codes, embedding_dim))
        # N: EMA of how often each code is chosen; z_avg: EMA of the sum of the vectors assigned to it.
        # N is all zero only before the data-dependent init, so it doubles as the "needs init" flag.
        self.register_buffer("N", torch.zeros(n_codes))
        self.register_buffer("z_avg", self.embeddings.clone())

    @property
    def initialized(self) -> bool:
        return bool(self.N.sum() > 0)

    def _random_vectors(self, flat: torch.Tensor) -> torch.Tensor:
        """n_codes random rows of `flat` (tiled with small noise when the batch has fewer), same on all ranks."""
        if flat.shape[0] < self.n_codes:
            repeats = math.ceil(self.n_codes / flat.shape[0])
            flat = flat.repeat(repeats, 1)
            flat = flat + torch.randn_like(flat) * (0.01 / math.sqrt(self.embedding_dim))
        chosen = flat[torch.randperm(flat.shape[0], device=flat.device)[: self.n_codes]].contiguous()
        if _distributed():
            dist.broadcast(chosen, 0)
        return chosen

    @torch.no_grad()
    def _init_from(self, flat: torch.Tensor) -> None:
        chosen = self._random_vectors(flat)
        self.embeddings.copy_(chosen)
        self.z_avg.copy_(chosen)
        self.N.fill_(1.0)

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code (squared L2) for each row of flat (N, D)."""
        distances = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.embeddings.t()
                     + self.embeddings.pow(2).sum(1)[None])
        return distances.argmin(1)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, t, h, w) -> code vectors (B, D, t, h, w)."""
        return F.embedding(codes, self.embeddings).movedim(-1, 1)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, onehot: torch.Tensor) -> None:
        counts = onehot.sum(0)
        sums = flat.t() @ onehot  # (D, n_codes)
        if _distributed():
            dist.all_reduce(counts)
            dist.all_reduce(sums)
        self.N.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.z_avg.mul_(self.decay).add_(sums.t(), alpha=1 - self.decay)
        n = self.N.sum()
        weights = (self.N + 1e-7) / (n + self.n_codes * 1e-7) * n  # Laplace-smoothed counts
        self.embeddings.copy_(self.z_avg / weights[:, None])
        # Dead-code restart: codes whose usage fell below one get a random encoder output of this batch.
        fresh = self._random_vectors(flat)
        alive = (self.N >= 1).float()[:, None]
        self.embeddings.mul_(alive).add_(fresh * (1 - alive))

    def forward(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """z: encoder output (B, D, t, h, w). Training mode updates the codebook from this batch."""
        flat = z.movedim(1, -1).flatten(0, -2)
        if self.training and not self.initialized:
            self._init_from(flat.detach())
        codes_flat = self.nearest(flat.detach())
        onehot = F.one_hot(codes_flat, self.n_codes).type_as(flat)
        codes = codes_flat.view(z.shape[0], *z.shape[2:])
        quantized = self.lookup(codes)
        commitment_loss = self.commitment_cost * F.mse_loss(z, quantized.detach())
        if self.training:
            self._ema_update(flat.detach(), onehot)
        avg_probs = onehot.mean(0)
        perplexity = torch.exp(-(avg_probs * torch.log(avg_probs + 1e-10)).sum())
        return dict(
            quantized=(quantized - z).detach() + z,  # straight-through estimator
            codes=codes,
            commitment_loss=commitment_loss,
            perplexity=perplexity,
            usage=(avg_probs > 0).float().mean(),
        )

"""Multi-head attention shared by the VQ-VAE (axial, non-causal) and the prior (causal, cross, cached).

Parameter names and initialisation follow the reference implementation (`w_qs`, `w_ks`, `w_vs`, `fc`), so
its checkpoints load unchanged; the arithmetic goes through `F.scaled_dot_product_attention`.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class MultiHeadAttention(nn.Module):
    """Queries of width `dim_q` attend to keys/values of width `dim_kv`.

    Per head the key size is dim_q / n_heads and the value size dim_kv / n_heads (as the reference).
    """

    def __init__(self, dim_q: int, dim_kv: int, n_heads: int, n_layers: int = 1):
        super().__init__()
        self.n_heads = n_heads
        self.d_k = dim_q // n_heads
        self.d_v = dim_kv // n_heads
        self.w_qs = nn.Linear(dim_q, n_heads * self.d_k, bias=False)
        self.w_ks = nn.Linear(dim_kv, n_heads * self.d_k, bias=False)
        self.w_vs = nn.Linear(dim_kv, n_heads * self.d_v, bias=False)
        self.fc = nn.Linear(n_heads * self.d_v, dim_q)
        nn.init.normal_(self.w_qs.weight, std=1.0 / math.sqrt(dim_q))
        nn.init.normal_(self.w_ks.weight, std=1.0 / math.sqrt(dim_kv))
        nn.init.normal_(self.w_vs.weight, std=1.0 / math.sqrt(dim_kv))
        nn.init.normal_(self.fc.weight, std=1.0 / math.sqrt(dim_q * n_layers))

    def split_heads(self, x: torch.Tensor, head_dim: int) -> torch.Tensor:
        # (B, L, n_heads * head_dim) -> (B, n_heads, L, head_dim)
        return x.unflatten(-1, (self.n_heads, head_dim)).transpose(-2, -3)

    def merge_heads(self, x: torch.Tensor) -> torch.Tensor:
        # (B, n_heads, L, d_v) -> (B, L, n_heads * d_v)
        return x.transpose(-2, -3).flatten(-2)

    def project_kv(self, kv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.split_heads(self.w_ks(kv), self.d_k), self.split_heads(self.w_vs(kv), self.d_v)

    def forward(self, q: torch.Tensor, kv: torch.Tensor, causal: bool = False,
                dropout_p: float = 0.0) -> torch.Tensor:
        """q: (..., Lq, dim_q), kv: (..., Lk, dim_kv) -> (..., Lq, dim_q)."""
        k, v = self.project_kv(kv)
        return self.attend(self.split_heads(self.w_qs(q), self.d_k), k, v, causal, dropout_p)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False,
               dropout_p: float = 0.0, mask: torch.Tensor | None = None) -> torch.Tensor:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=causal)
        return self.fc(self.merge_heads(out))


class AxialBlock(nn.Module):
    """The VQ-VAE's attention: the SUM of full attentions along W, H and T (no position encodings)."""

    def __init__(self, n_hiddens: int, n_heads: int):
        super().__init__()
        self.attn_w = MultiHeadAttention(n_hiddens, n_hiddens, n_heads)
        self.attn_h = MultiHeadAttention(n_hiddens, n_hiddens, n_heads)
        self.attn_t = MultiHeadAttention(n_hiddens, n_hiddens, n_heads)

    @staticmethod
    def _along(attn: MultiHeadAttention, x: torch.Tensor, axis: int) -> torch.Tensor:
        # x: (B, T, H, W, C); attend along `axis` by moving it next to the channels.
        moved = x.movedim(axis, -2)
        return attn(moved, moved).movedim(-2, axis)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.movedim(1, -1)  # (B, C, T, H, W) -> (B, T, H, W, C)
        out = self._along(self.attn_w, x, 3) + self._along(self.attn_h, x, 2) + self._along(self.attn_t, x, 1)
        return out.movedim(-1, 1)

"""Multi-head attention shared by the VQ-VAE (axial, non-causal) and the prior (causal, cross, cached).

Parameter names and initialisation follow the reference implementation (`w_qs`, `w_ks`, `w_vs`, `fc`), so
its checkpoints load unchanged; the arithmetic goes through `F.scaled_dot_product_attention`. The prior's
self-attention takes an optional KV cache: without one it is plainly causal (training, teacher forcing);
with one it writes the new positions' keys and values and attends to everything up to them (prefill, one
token, or several proposed tokens at once).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class CacheWindow:
    """Where one forward's inputs sit in the cached sequence: positions start .. start+count-1.

    `start` as a Python int: keys and values are read up to the last input (fastest eagerly). As a (1,)
    tensor (one input) every shape is static: the whole cache is read under a mask, so the step can be
    compiled once and replayed as a CUDA graph.
    """

    start: int | torch.Tensor
    count: int
    mask: torch.Tensor | None  # (count, visible keys) bool, True where a query may look; None: see causal
    causal: bool  # the inputs are the whole visible sequence (a prefill from 0): plainly causal

    @classmethod
    def at(cls, start: int | torch.Tensor, count: int, length: int, device: torch.device) -> "CacheWindow":
        if isinstance(start, torch.Tensor):
            if count != 1:
                raise ValueError("a position tensor (static shapes) takes one input at a time")
            return cls(start, 1, (torch.arange(length, device=device) <= start).view(1, -1), False)
        if start == 0 or count == 1:  # the whole prefix or one query: no mask needed
            return cls(start, count, None, count > 1)
        # Several queries after cached ones: query i sees keys 0 .. start + i (SDPA's is_causal would align
        # the diagonal to the first key, not to the last).
        keys = torch.arange(start + count, device=device)
        queries = torch.arange(start, start + count, device=device)
        return cls(start, count, keys.view(1, -1) <= queries.view(-1, 1), False)


@dataclass
class KVCache:
    """One layer's keys (B, heads, L, d_k) and values (B, heads, L, d_v), allocated once per generation.

    Writing positions that were written before overwrites them, and a window never reads past its last
    input: rejected proposals need no rollback.
    """

    keys: torch.Tensor
    values: torch.Tensor
    window: CacheWindow | None = None  # where the forward that holds this view writes; see `at`

    @classmethod
    def empty(cls, batch: int, attn: "MultiHeadAttention", length: int, like: torch.Tensor) -> "KVCache":
        def zeros(head_dim):
            return torch.zeros(batch, attn.n_heads, length, head_dim, device=like.device, dtype=like.dtype)

        return cls(zeros(attn.d_k), zeros(attn.d_v))

    def at(self, window: CacheWindow) -> "KVCache":
        """This cache as one forward sees it: same tensors, that forward's window."""
        return KVCache(self.keys, self.values, window)

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the window's keys and values; return all keys and values its queries may see."""
        start = self.window.start
        if isinstance(start, torch.Tensor):
            self.keys.index_copy_(2, start, k)
            self.values.index_copy_(2, start, v)
            return self.keys, self.values
        end = start + self.window.count
        self.keys[:, :, start:end] = k
        self.values[:, :, start:end] = v
        return self.keys[:, :, :end], self.values[:, :, :end]


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
        # A decoding copy (videogpt_core.models.decoding) replaces w_qs, w_ks, w_vs by one fused projection here.
        self.w_qkv: nn.Module | None = None

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

    def project_qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys and values of x, each (B, heads, L, head_dim), for self-attention."""
        if self.w_qkv is None:
            q, k, v = self.w_qs(x), self.w_ks(x), self.w_vs(x)
        else:
            width_k = self.n_heads * self.d_k
            q, k, v = self.w_qkv(x).split([width_k, width_k, self.n_heads * self.d_v], dim=-1)
        return self.split_heads(q, self.d_k), self.split_heads(k, self.d_k), self.split_heads(v, self.d_v)

    def self_attention(self, x: torch.Tensor, cache: KVCache | None = None, dropout_p: float = 0.0) -> torch.Tensor:
        """Causal self-attention of x (B, n, dim_q); with a cache, x are the cache window's positions."""
        q, k, v = self.project_qkv(x)
        if cache is None:
            return self.attend(q, k, v, causal=True, dropout_p=dropout_p)
        k, v = cache.update(k, v)
        return self.attend(q, k, v, causal=cache.window.causal, mask=cache.window.mask)

    def cross_attention(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """x (B, n, dim_q) attends to keys and values projected before (`project_kv`)."""
        return self.attend(self.split_heads(self.w_qs(x), self.d_k), k, v)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False,
               dropout_p: float = 0.0, mask: torch.Tensor | None = None) -> torch.Tensor:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=causal)
        return self.fc(self.merge_heads(out))


class AxialBlock(nn.Module):
    """The VQ-VAE's attention: the SUM of full attentions along W, H and T (no position encodings); causal:
    along T each frame attends to itself and earlier frames only; along_time=False: W and H only."""

    def __init__(self, n_hiddens: int, n_heads: int, causal: bool = False, along_time: bool = True):
        super().__init__()
        self.causal = causal
        self.attn_w = MultiHeadAttention(n_hiddens, n_hiddens, n_heads)
        self.attn_h = MultiHeadAttention(n_hiddens, n_hiddens, n_heads)
        self.attn_t = MultiHeadAttention(n_hiddens, n_hiddens, n_heads) if along_time else None

    @staticmethod
    def _along(attn: MultiHeadAttention, x: torch.Tensor, axis: int, causal: bool = False) -> torch.Tensor:
        # x: (B, T, H, W, C); attend along `axis` by moving it next to the channels.
        moved = x.movedim(axis, -2)
        return attn(moved, moved, causal=causal).movedim(-2, axis)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.movedim(1, -1)  # (B, C, T, H, W) -> (B, T, H, W, C)
        out = self._along(self.attn_w, x, 3) + self._along(self.attn_h, x, 2)
        if self.attn_t is not None:
            out = out + self._along(self.attn_t, x, 1, self.causal)
        return out.movedim(-1, 1)

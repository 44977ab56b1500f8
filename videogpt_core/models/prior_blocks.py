"""The prior's transformer: its conditional LayerNorm, its block, and the one loop over the blocks.

The same loop runs the training model (teacher forcing, no cache) and its decoding copy (a prefill, one
token, or several proposed tokens against the KV cache; see decoding.py): only the cache and the
decoding copy's linear layers differ.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from videogpt_core.models.attention import CacheWindow, KVCache, MultiHeadAttention
from videogpt_core.models.config import VideoGPTConfig

Affine = tuple[torch.Tensor, torch.Tensor]  # a LayerNorm's (g, b): (dim,), or (B, t or n, dim) when conditional


class GeLU2(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class PriorLayerNorm(nn.Module):
    """The reference's LayerNorm: float32, `(x - mean) * (1e-5 + rsqrt(var)) * g + b`.

    Conditional (cond_dim > 0): g = 1 + w(c), b = wb(c) for a condition vector c per latent time step
    (class one-hot, then the action embedding). An all-zero c is the "no condition" of guidance.
    """

    def __init__(self, dim: int, cond_dim: int = 0, n_classes: int = 0):
        super().__init__()
        self.conditional = cond_dim > 0
        if self.conditional:
            self.w = nn.Linear(cond_dim, dim, bias=False)
            self.wb = nn.Linear(cond_dim, dim, bias=False)
            with torch.no_grad():
                self.w.weight.zero_()
                if n_classes:
                    self.w.weight[:, :n_classes] = 1.0 / math.sqrt(n_classes)  # as the reference
        else:
            self.g = nn.Parameter(torch.ones(dim))
            self.b = nn.Parameter(torch.zeros(dim))

    def affine(self, cond: torch.Tensor | None) -> Affine:
        """(g, b), each (dim,) or (B, t, dim) for cond (B, t, cond_dim)."""
        if not self.conditional:
            return self.g, self.b
        cond = cond.to(self.w.weight.dtype)
        return 1 + self.w(cond), self.wb(cond)

    @staticmethod
    def normalize(x: torch.Tensor, g: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        centered = xf - xf.mean(-1, keepdim=True)
        var = centered.square().mean(-1, keepdim=True)
        return (centered * (1e-5 + var.rsqrt()) * g + b).type_as(x)


@dataclass
class BlockCondition:
    norm_affines: list[Affine]  # the block's LayerNorms in order: attention, [cross-attention,] MLP
    frame_kv: tuple[torch.Tensor, torch.Tensor] | None  # cross-attention keys and values of the frames


@dataclass
class Condition:
    """What the blocks need besides the codes; computed once per forward or per generation."""

    blocks: list[BlockCondition]
    final_affine: Affine  # the LayerNorm before fc_out

    def map_affines(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "Condition":
        """fn applied to each (g, b) tensor; frame keys and values kept."""
        def pair(affine):
            return fn(affine[0]), fn(affine[1])

        return Condition([BlockCondition([pair(a) for a in block.norm_affines], block.frame_kv)
                          for block in self.blocks], pair(self.final_affine))

    def map_tensors(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "Condition":
        """fn applied to every tensor (a copy or a refill of the whole condition)."""
        mapped = self.map_affines(fn)
        for block in mapped.blocks:
            if block.frame_kv is not None:
                block.frame_kv = (fn(block.frame_kv[0]), fn(block.frame_kv[1]))
        return mapped

    def tensors(self) -> list[torch.Tensor]:
        """Every tensor, in a fixed order."""
        found = []
        self.map_tensors(lambda tensor: found.append(tensor) or tensor)
        return found

    def at(self, start: int | torch.Tensor, count: int, latent_shape: tuple[int, int, int]) -> "Condition":
        """The affines of positions start .. start+count-1 (a conditional norm's rows are per time step)."""
        slice_len = latent_shape[1] * latent_shape[2]
        length = latent_shape[0] * slice_len

        def select(tensor):
            if tensor.dim() == 1:
                return tensor
            if isinstance(start, torch.Tensor):
                return tensor[:, start // slice_len]
            if count == 1:  # narrow, not a slice: a compiled step then serves every time step
                return tensor.narrow(1, start // slice_len, 1)
            if start == 0 and count == length:  # the whole grid (teacher forcing)
                return tensor.repeat_interleave(slice_len, dim=1)
            return tensor[:, torch.arange(start, start + count, device=tensor.device) // slice_len]

        return self.map_affines(select)


class PriorBlock(nn.Module):
    def __init__(self, config: VideoGPTConfig, frame_dim: int):
        super().__init__()
        d, c = config.hidden_dim, config.cond_dim
        self.pre_attn_norm = PriorLayerNorm(d, c, config.n_classes)
        self.attn = MultiHeadAttention(d, d, config.n_heads, config.n_layers)
        self.use_frames = frame_dim > 0
        if self.use_frames:
            self.pre_enc_norm = PriorLayerNorm(d, c, config.n_classes)
            self.enc_attn = MultiHeadAttention(d, frame_dim, config.n_heads, config.n_layers)
        self.pre_fc_norm = PriorLayerNorm(d, c, config.n_classes)
        self.fc_block = nn.Sequential(nn.Linear(d, 4 * d), GeLU2(), nn.Linear(4 * d, d))
        self.dropout = nn.Dropout(config.dropout)
        self.attn_dropout = config.attn_dropout

    def norms(self) -> list[PriorLayerNorm]:
        return [self.pre_attn_norm] + ([self.pre_enc_norm] if self.use_frames else []) + [self.pre_fc_norm]

    def forward(self, x: torch.Tensor, cond: BlockCondition, cache: KVCache | None = None) -> torch.Tensor:
        """x (B, n, d): the whole sequence without a cache (causal), else the positions of cache.window."""
        # Dropout only in training: no extra calls per token when decoding.
        training = self.training
        affines = iter(cond.norm_affines)
        h = PriorLayerNorm.normalize(x, *next(affines))
        y = self._self_attention(h, cache, self.attn_dropout if training else 0.0)
        x = x + (self.dropout(y) if training else y)
        if self.use_frames:
            h = PriorLayerNorm.normalize(x, *next(affines))
            y = self.enc_attn.cross_attention(h, *cond.frame_kv)
            x = x + (self.dropout(y) if training else y)
        h = PriorLayerNorm.normalize(x, *next(affines))
        for layer in self.fc_block:  # linear, GeLU2, linear
            h = layer(h)
        return x + (self.dropout(h) if training else h)

    def _self_attention(self, h: torch.Tensor, cache: KVCache | None, dropout_p: float) -> torch.Tensor:
        attn = self.attn
        if cache is not None or attn.w_qkv is not None:
            return attn.self_attention(h, cache, dropout_p)
        # Without a cache (training): queries, keys and values from one (d, 3d) product, not three (d, d) ones:
        # fewer, larger matmuls in the forward and the backward (the `unfused` recipe in BENCHMARKS.md).
        weight = torch.cat([attn.w_qs.weight, attn.w_ks.weight, attn.w_vs.weight])
        width_k = attn.n_heads * attn.d_k
        q, k, v = F.linear(h, weight).split([width_k, width_k, attn.n_heads * attn.d_v], dim=-1)
        return attn.attend(attn.split_heads(q, attn.d_k), attn.split_heads(k, attn.d_k),
                           attn.split_heads(v, attn.d_v), causal=True, dropout_p=dropout_p)


def run_blocks(blocks: nn.ModuleList, fc_out: nn.Module, x: torch.Tensor, condition: Condition,
               caches: list[KVCache] | None = None, window: CacheWindow | None = None) -> torch.Tensor:
    """Input vectors x (B, n, d) -> logits (B, n, n_codes); `condition` holds the affines of x's positions
    (Condition.at).

    Without caches x is the whole causal sequence from position 0. With caches (one per block) x sits at the
    window's positions: their keys and values are written into the caches and each also attends to earlier
    positions.
    """
    for i, block in enumerate(blocks):
        x = block(x, condition.blocks[i], None if caches is None else caches[i].at(window))
    return fc_out(PriorLayerNorm.normalize(x, *condition.final_affine))

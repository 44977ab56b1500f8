"""The reference implementation's sampling algorithm, run on one of our priors for a like-for-like speed row.

Written from the documented behaviour of the public reference code (see the reference facts in the
project's design notes), not from its source: raster order, one forward per latent, keys and values cached
per layer, the frame features and their cross-attention keys / values computed once, and per token:

- the codebook vectors of the WHOLE sample grid looked up again (the reference embeds its entire sample
  tensor every step and then takes the slice it needs), the previous position's vector taken (the right
  shift; the start vector at position 0) and projected by fc_in;
- the broadcast position embedding built whole (the three per-axis tables concatenated over the grid) and
  the current position's row added;
- per block: LayerNorm, separate q / k / v projections, the new key and value written into the layer's
  cache, the query attending over the whole cache under the row of the dense (L, L) causal mask (softmax
  in float32), the output projection; cross-attention to the frames; the MLP with GeLU2;
- the final LayerNorm and fc_out, softmax, and plain `torch.multinomial` (no temperature / top-k / top-p).

Weights are our prior's own modules (the same parameters the reference names w_qs, w_ks, w_vs, fc, ...), so
both samplers compute the same distribution and only the algorithm differs.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from videogpt_core.models.conditions import Conditions
from videogpt_core.models.prior import Condition, PriorLayerNorm, VideoGPT


@dataclass
class ReferenceState:
    samples: torch.Tensor  # (B, t, h, w) int64, filled in raster order
    condition: Condition
    caches: list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys (B, heads, L, d_k), values (B, heads, L, d_v)
    mask: torch.Tensor  # (L, L) float, 1 where a query may look (the reference's dense mask buffer)


def start(prior: VideoGPT, batch: int, frames=None, labels=None, actions=None) -> ReferenceState:
    """Conditioning (frame encoder, cross-attention keys / values) once, empty caches, the dense mask."""
    length = prior.config.seq_len
    device = prior.fc_in.weight.device
    condition = prior.condition(Conditions(frames=frames, labels=labels, actions=actions), batch)
    caches = []
    for block in prior.blocks:
        attn = block.attn
        caches.append((torch.zeros(batch, attn.n_heads, length, attn.d_k, device=device),
                       torch.zeros(batch, attn.n_heads, length, attn.d_v, device=device)))
    mask = torch.tril(torch.ones(length, length, device=device))
    samples = torch.zeros(batch, *prior.latent_shape, dtype=torch.long, device=device)
    return ReferenceState(samples, condition, caches, mask)


def _attend_cached(attn, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor], mask_row: torch.Tensor,
                   position: int) -> torch.Tensor:
    q = attn.split_heads(attn.w_qs(x), attn.d_k)
    k = attn.split_heads(attn.w_ks(x), attn.d_k)
    v = attn.split_heads(attn.w_vs(x), attn.d_v)
    keys, values = cache
    keys[:, :, position:position + 1] = k
    values[:, :, position:position + 1] = v
    scores = q @ keys.transpose(-1, -2) / math.sqrt(attn.d_k)  # (B, heads, 1, L): the whole cache
    scores = scores.masked_fill(mask_row == 0, float("-inf"))
    weights = scores.float().softmax(-1).type_as(values)
    return attn.fc(attn.merge_heads(weights @ values))


def logits_at(prior: VideoGPT, state: ReferenceState, position: int) -> torch.Tensor:
    """One forward for `position` (all earlier samples filled): logits (B, n_codes)."""
    batch = state.samples.shape[0]
    embeddings = F.embedding(state.samples, prior.codebook)  # (B, t, h, w, D): the whole grid, every token
    if position == 0:
        x = prior.sos.expand(batch, 1, -1)
    else:
        x = prior.fc_in(embeddings.flatten(1, 3)[:, position - 1:position])
    x = x + prior.pos_embd.table()[position:position + 1]  # the whole broadcast table, one row used
    condition = state.condition.at(position, 1, prior.latent_shape)
    mask_row = state.mask[position]
    for block, block_condition, cache in zip(prior.blocks, condition.blocks, state.caches):
        affines = iter(block_condition.norm_affines)
        x = x + _attend_cached(block.attn, PriorLayerNorm.normalize(x, *next(affines)), cache, mask_row, position)
        if block.use_frames:
            h = PriorLayerNorm.normalize(x, *next(affines))
            x = x + block.enc_attn.cross_attention(h, *block_condition.frame_kv)
        h = PriorLayerNorm.normalize(x, *next(affines))
        for layer in block.fc_block:
            h = layer(h)
        x = x + h
    return prior.fc_out(PriorLayerNorm.normalize(x, *condition.final_affine))[:, 0]


def multinomial(logits: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.multinomial(F.softmax(logits.float(), dim=-1), 1, generator=generator)[:, 0]


def step(prior: VideoGPT, state: ReferenceState, position: int, generator: torch.Generator | None,
         choose: Callable[[torch.Tensor, torch.Generator | None], torch.Tensor] = multinomial) -> None:
    """Sample the code at `position` into state.samples."""
    code = choose(logits_at(prior, state, position), generator)
    state.samples.view(state.samples.shape[0], -1)[:, position] = code


@torch.no_grad()
def sample(prior: VideoGPT, batch: int, generator: torch.Generator | None = None, choose=multinomial,
           **conditions) -> torch.Tensor:
    """A whole grid (B, t, h, w) the reference's way; `choose` replaces multinomial (tests use argmax)."""
    state = start(prior, batch, **conditions)
    for position in range(prior.config.seq_len):
        step(prior, state, position, generator, choose)
    return state.samples

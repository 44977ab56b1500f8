"""Cached decoding for the prior: a decoding copy of its modules and the per-generation decode state.

The decoding copy (`PriorDecoder`) holds the prior's blocks with each linear layer swapped for its
decode-step layout (a transposed float weight with Q, K, V fused into one product, or int8), the code
and position embeddings precomputed as tables, and runs the same block loop as training
(prior_blocks.run_blocks) against a static per-layer KV cache. A prior keeps one copy per weight format
and refreshes it in place when its own weights change (training, load_state_dict).

A `DecodeState` is one generation's condition and KV caches. For a step replayed as a CUDA graph
(static=True) the states are kept per shape and refilled, and they and the decoding copy are marked as
static addresses, so the graph may write the caches and is recorded once, not per generation.
"""
from __future__ import annotations

import contextlib
import copy
import threading
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from videogpt_core.models.attention import CacheWindow, KVCache
from videogpt_core.models.prior_blocks import Condition, PriorBlock, run_blocks
from videogpt_core.models.quantization import decode_linear

_LOCK = threading.Lock()  # two generations must not take the same kept state or build the same copy


def _swap_linears(block: PriorBlock, quantize: str | None) -> None:
    """Replace a block's linear layers by their decode-step layout; drop those decoding never runs."""
    attn = block.attn
    fused = torch.cat([attn.w_qs.weight, attn.w_ks.weight, attn.w_vs.weight])
    attn.w_qkv = decode_linear(fused, None, quantize)
    attn.w_qs = attn.w_ks = attn.w_vs = None
    attn.fc = decode_linear(attn.fc.weight, attn.fc.bias, quantize)
    if block.use_frames:  # the frames' keys and values are projected once per generation, by the prior
        cross = block.enc_attn
        cross.w_qs = decode_linear(cross.w_qs.weight, None, quantize)
        cross.fc = decode_linear(cross.fc.weight, cross.fc.bias, quantize)
        cross.w_ks = cross.w_vs = None
    for index in (0, 2):
        linear = block.fc_block[index]
        block.fc_block[index] = decode_linear(linear.weight, linear.bias, quantize)


class PriorDecoder(nn.Module):
    """A prior's decoding copy: same blocks, decode-layout linear layers, precomputed input tables."""

    def __init__(self, prior: nn.Module, quantize: str | None):
        super().__init__()
        self.latent_shape = prior.latent_shape
        # Built once and kept: outside any autocast of the caller, and without autograd history.
        no_autocast = torch.autocast(prior.codebook.device.type, enabled=False) \
            if prior.codebook.device.type in ("cpu", "cuda") else contextlib.nullcontext()
        with torch.no_grad(), no_autocast:
            self.blocks = copy.deepcopy(prior.blocks)
            for block in self.blocks:
                _swap_linears(block, quantize)
            self.fc_out = decode_linear(prior.fc_out.weight, None, quantize)
            self.register_buffer("code_inputs", prior.fc_in(prior.codebook))  # (n_codes, d)
            self.register_buffer("positions", prior.pos_embd.table())  # (L, d)
            self.register_buffer("sos", prior.sos.detach().clone())
        self.requires_grad_(False).eval()
        self.source = weights_version(prior)
        self.marked_static = False

    def tensors(self) -> list[torch.Tensor]:
        return list(self.parameters()) + list(self.buffers())

    def run(self, x: torch.Tensor, state: "DecodeState", start: int | torch.Tensor) -> torch.Tensor:
        """Input vectors x (B, n, d) at positions start .. start+n-1 -> logits (B, n, n_codes)."""
        count, shape = x.shape[1], self.latent_shape
        if isinstance(start, int) and count == 1 and not torch.compiler.is_compiling():
            # Eager, one token: the condition's rows of each time step are picked once per generation.
            step = start // (shape[1] * shape[2])
            condition = state.step_conditions.get(step)
            if condition is None:
                condition = state.step_conditions[step] = state.condition.at(start, 1, shape)
        else:
            condition = state.condition.at(start, count, shape)
        window = CacheWindow.at(start, count, state.caches[0].keys.shape[2], x.device)
        return run_blocks(self.blocks, self.fc_out, x, condition, state.caches, window)

    def prefill(self, state: "DecodeState", prefix: torch.Tensor | None) -> torch.Tensor:
        """The start token and the prefix codes (B, n) -> logits (B, n_codes) for position n."""
        x = self.sos.expand(state.batch, 1, -1)
        if prefix is not None and prefix.shape[1]:
            x = torch.cat([x, self.code_inputs[prefix]], dim=1)
        return self.run(x + self.positions[: x.shape[1]], state, 0)[:, -1]

    def step(self, state: "DecodeState", codes: torch.Tensor, position: int | torch.Tensor) -> torch.Tensor:
        """codes (B, k) at positions position-1 .. position+k-2 -> logits (B, k, n_codes) for positions
        position .. position+k-1 (a position tensor: k = 1)."""
        rows = self.positions[position] if isinstance(position, torch.Tensor) \
            else self.positions[position: position + codes.shape[1]]
        return self.run(self.code_inputs[codes] + rows, state, position)


def weights_version(prior: nn.Module) -> tuple:
    """Changes whenever a parameter or buffer of `prior` is written in place or replaced."""
    return tuple((t.data_ptr(), t._version) for t in (*prior.parameters(), *prior.buffers()))


def decoder_for(prior: nn.Module, quantize: str | None, static: bool) -> PriorDecoder:
    """The prior's decoding copy for this weight format, current with its weights."""
    with _LOCK:
        decoder = prior.decoders.get(quantize)
        if decoder is None:
            decoder = prior.decoders[quantize] = PriorDecoder(prior, quantize)
        elif decoder.source != weights_version(prior):  # refilled in place: a recorded graph stays valid
            fresh = PriorDecoder(prior, quantize)
            for target, source in zip(decoder.tensors(), fresh.tensors(), strict=True):
                target.copy_(source)
            decoder.source = fresh.source
        if static and not decoder.marked_static:
            from torch._dynamo import mark_static_address

            for tensor in decoder.tensors():
                mark_static_address(tensor)
            decoder.marked_static = True
    return decoder


@dataclass(eq=False)  # a state is itself, not its values
class DecodeState:
    """One generation: its condition and KV caches, decoded by `decoder`."""

    decoder: PriorDecoder
    condition: Condition
    caches: list[KVCache]  # per block
    batch: int
    in_use: bool = False  # a kept (static) state between start_decoding and release()
    # Eager one-token steps: the condition at each latent time step (views of `condition`), made on first use.
    step_conditions: dict[int, Condition] = field(default_factory=dict)

    def release(self) -> None:
        """Done decoding: a kept state may serve the next generation (a no-op for other states)."""
        self.in_use = False

    def tensors(self) -> list[torch.Tensor]:
        """Every tensor this state holds (not the decoder's), in a fixed order."""
        return self.condition.tensors() + [t for cache in self.caches for t in (cache.keys, cache.values)]

    def map_tensors(self, fn) -> "DecodeState":
        caches = [KVCache(fn(cache.keys), fn(cache.values)) for cache in self.caches]
        return DecodeState(self.decoder, self.condition.map_tensors(fn), caches, self.batch)


def new_state(prior: nn.Module, condition: Condition, batch: int, quantize: str | None,
              static: bool) -> DecodeState:
    decoder = decoder_for(prior, quantize, static)
    length = prior.config.seq_len
    caches = [KVCache.empty(batch, block.attn, length, like=decoder.code_inputs) for block in prior.blocks]
    state = DecodeState(decoder, condition, caches, batch)
    return kept_state(prior.static_states, state) if static else state


def kept_state(kept_states: dict[tuple, list[DecodeState]], fresh: DecodeState) -> DecodeState:
    """A free kept state of fresh's shapes, refilled with fresh's values (a copy of fresh if none)."""
    tensors = fresh.tensors()
    key = (id(fresh.decoder),) + tuple((t.shape, t.dtype, t.device) for t in tensors)
    with _LOCK:
        kept = next((state for state in kept_states.get(key, ()) if not state.in_use), None)
        if kept is not None:
            kept.in_use = True
    if kept is None:
        # Copies: the model's own parameters must not be marked, nor refilled in place later.
        kept = fresh.map_tensors(torch.Tensor.clone)
        from torch._dynamo import mark_static_address

        for tensor in kept.tensors():
            mark_static_address(tensor)
        kept.in_use = True
        with _LOCK:
            kept_states.setdefault(key, []).append(kept)
    else:
        for target, source in zip(kept.tensors(), tensors, strict=True):
            target.copy_(source)
    return kept

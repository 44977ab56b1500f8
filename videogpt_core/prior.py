"""The VideoGPT prior: a GPT over the VQ-VAE's codes, conditioned on first frames, a class and/or actions.

Teacher-forced `forward` for training, and `start_decoding` / `prefill` / `decode_step` for fast sampling
with a static per-layer KV cache (see sampling.py for the loop). Parameter names follow the reference
implementation where it has the same parts, so its checkpoints convert with a few renames.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from videogpt_core.attention import MultiHeadAttention
from videogpt_core.checkpoints import PretrainedMixin
from videogpt_core.config import VideoGPTConfig
from videogpt_core.frame_encoder import FrameEncoder
from videogpt_core.quantization import Int8Weight, check_quantize


class GeLU2(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class BroadcastPosEmbed(nn.Module):
    """One table per grid axis, each a third of the channels, broadcast over the grid and concatenated."""

    def __init__(self, shape: tuple[int, ...], dim: int):
        super().__init__()
        self.shape = tuple(shape)
        self.emb = nn.ParameterDict({
            f"d_{i}": nn.Parameter(torch.randn(n, dim // len(shape)) * 0.01) for i, n in enumerate(shape)})

    def table(self) -> torch.Tensor:
        """(prod(shape), dim): the embedding of every grid position in raster order."""
        parts = []
        for i, n in enumerate(self.shape):
            view = [1] * len(self.shape) + [-1]
            view[i] = n
            parts.append(self.emb[f"d_{i}"].view(view).expand(*self.shape, -1))
        return torch.cat(parts, dim=-1).flatten(0, -2)


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

    def affine(self, cond: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
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

    def norms(self) -> list[PriorLayerNorm]:
        return [self.pre_attn_norm] + ([self.pre_enc_norm] if self.use_frames else []) + [self.pre_fc_norm]


@dataclass
class Condition:
    """What the blocks need besides the codes; computed once per forward or per generation."""

    norm_affines: list[tuple[torch.Tensor, torch.Tensor]]  # per LayerNorm: (g, b), (dim,) or (B, t, dim)
    frame_kv: list[tuple[torch.Tensor, torch.Tensor]] | None  # per block: cross-attention K, V


@dataclass(eq=False)  # a state is itself, not its values
class DecodeState:
    """Everything `decode_step` reads, prepared by `start_decoding` so each token costs O(1) lookups."""

    condition: Condition
    code_inputs: torch.Tensor  # (n_codes, hidden): codebook vectors already through fc_in
    positions: torch.Tensor  # (L, hidden) position embeddings
    caches: list[tuple[torch.Tensor, torch.Tensor]]  # per block: K (B, heads, L, d_k), V (B, heads, L, d_v)
    weights: list[dict[str, torch.Tensor | Int8Weight]]  # per block: decode-layout weights, see below
    out_weight: torch.Tensor | Int8Weight  # fc_out, transposed (or int8)
    batch: int
    in_use: bool = False  # a kept (static) state between start_decoding and release()

    def release(self) -> None:
        """Done decoding: a kept state may serve the next generation (a no-op for other states)."""
        self.in_use = False


_KEPT_STATES_LOCK = threading.Lock()  # two generations must not take the same kept state


def _state_tensors(state: DecodeState) -> list[torch.Tensor]:
    """Every tensor a float DecodeState holds, in a fixed order."""
    tensors = [t for pair in state.condition.norm_affines for t in pair]
    tensors += [t for pair in state.condition.frame_kv or () for t in pair]
    tensors += [state.code_inputs, state.positions] + [t for pair in state.caches for t in pair]
    tensors += [t for weights in state.weights for t in weights.values()] + [state.out_weight]
    return tensors


def _map_state_tensors(state: DecodeState, fn) -> DecodeState:
    """A DecodeState like `state` with fn applied to each of its tensors (float states)."""
    def pairs(items):
        return [(fn(a), fn(b)) for a, b in items]

    cond = state.condition
    return replace(state, condition=Condition(pairs(cond.norm_affines),
                                              None if cond.frame_kv is None else pairs(cond.frame_kv)),
                   code_inputs=fn(state.code_inputs), positions=fn(state.positions), caches=pairs(state.caches),
                   weights=[{name: fn(w) for name, w in weights.items()} for weights in state.weights],
                   out_weight=fn(state.out_weight))


def _decode_matrix(weight: torch.Tensor, quantize: str | None) -> torch.Tensor | Int8Weight:
    """An nn.Linear weight (out, in) in the decode step's layout: transposed float, or int8."""
    return weight.t().contiguous() if quantize is None else Int8Weight.quantize(weight)


def _decode_weights(block: "PriorBlock", quantize: str | None = None) -> dict[str, torch.Tensor | Int8Weight]:
    """A block's weights laid out for matrix-vector work: x @ W is about twice as fast on a CPU as
    F.linear(x, W^T) for one token, and Q, K, V come out of one product."""
    attn = block.attn
    matrices = {
        "qkv": torch.cat([attn.w_qs.weight, attn.w_ks.weight, attn.w_vs.weight]), "attn_out": attn.fc.weight,
        "fc1": block.fc_block[0].weight, "fc2": block.fc_block[2].weight,
    }
    biases = {"attn_out_bias": attn.fc.bias, "fc1_bias": block.fc_block[0].bias, "fc2_bias": block.fc_block[2].bias}
    if block.use_frames:
        matrices.update(cross_q=block.enc_attn.w_qs.weight, cross_out=block.enc_attn.fc.weight)
        biases["cross_out_bias"] = block.enc_attn.fc.bias
    return {name: _decode_matrix(weight, quantize) for name, weight in matrices.items()} | biases


def _linear(x: torch.Tensor, weight: torch.Tensor | Int8Weight, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x (..., in) -> (..., out) for a transposed float weight (in, out) or an Int8Weight."""
    flat = x.reshape(-1, x.shape[-1])
    if isinstance(weight, Int8Weight):
        return weight.linear(flat, bias).view(*x.shape[:-1], weight.out_features)
    out = flat @ weight if bias is None else torch.addmm(bias, flat, weight)
    return out.view(*x.shape[:-1], weight.shape[1])


class VideoGPT(PretrainedMixin, nn.Module):
    config_class = VideoGPTConfig
    model_kind = "prior"

    def __init__(self, config: VideoGPTConfig | None = None, **kwargs):
        super().__init__()
        self.config = config = self.resolve_config(config, kwargs)
        d = config.hidden_dim
        # A frozen copy of the VQ-VAE's codebook: the inputs are code vectors, not learned embeddings.
        self.register_buffer("codebook", torch.zeros(config.n_codes, config.embedding_dim))
        frame_dim = 0
        if config.n_cond_frames:
            self.frame_encoder = FrameEncoder(config.frame_encoder_widths, config.frame_encoder_blocks)
            frame_dim = self.frame_encoder.out_channels
            quarter = config.resolution // 4
            self.frame_pos_embd = BroadcastPosEmbed((config.n_cond_frames, quarter, quarter), frame_dim)
        if config.action_dim:
            e = config.action_embed_dim
            self.action_mlp = nn.Sequential(
                nn.Linear(config.frames_per_latent * config.action_dim, e), nn.GELU(), nn.Linear(e, e))
        self.fc_in = nn.Linear(config.embedding_dim, d, bias=False)
        nn.init.normal_(self.fc_in.weight, std=0.02)
        self.sos = nn.Parameter(torch.randn(d) * 0.02)
        self.pos_embd = BroadcastPosEmbed(config.latent_shape, d)
        self.blocks = nn.ModuleList(PriorBlock(config, frame_dim) for _ in range(config.n_layers))
        self.norm = PriorLayerNorm(d, config.cond_dim, config.n_classes)
        self.fc_out = nn.Linear(d, config.n_codes, bias=False)
        nn.init.zeros_(self.fc_out.weight)
        self._static_states: dict[tuple, list[DecodeState]] = {}  # see start_decoding(static=True)

    @classmethod
    def for_vqvae(cls, vqvae, **kwargs) -> "VideoGPT":
        """A prior over `vqvae`'s codes, holding a copy of its codebook."""
        vq = vqvae.config
        prior = cls(latent_shape=vq.latent_shape, n_codes=vq.n_codes, embedding_dim=vq.embedding_dim,
                    sequence_length=vq.sequence_length, resolution=vq.resolution, **kwargs)
        prior.codebook.copy_(vqvae.codebook.embeddings.detach())
        return prior

    # ---- conditioning -------------------------------------------------------------------------------

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return self.config.latent_shape

    @property
    def n_codes(self) -> int:
        return self.config.n_codes

    def all_norms(self) -> list[PriorLayerNorm]:
        return [n for block in self.blocks for n in block.norms()] + [self.norm]

    def check_codes(self, codes: torch.Tensor) -> None:
        if not isinstance(codes, torch.Tensor) or codes.is_floating_point() or codes.dim() != 4 \
                or tuple(codes.shape[1:]) != self.latent_shape:
            shape = tuple(codes.shape) if isinstance(codes, torch.Tensor) else type(codes).__name__
            raise ValueError(f"codes must be an integer tensor (B, {', '.join(map(str, self.latent_shape))}), "
                             f"got {shape}")
        if codes.min() < 0 or codes.max() >= self.n_codes:
            raise ValueError(f"codes must lie in [0, {self.n_codes}), got [{codes.min().item()}, "
                             f"{codes.max().item()}]")

    def condition_vector(self, batch: int, labels=None, actions=None, drop: torch.Tensor | None = None):
        """(B, t, cond_dim) driving the conditional LayerNorms, or None for a model without them.

        `drop` (B,) bool zeroes the whole vector of those samples: the unconditional branch of guidance.
        """
        cfg = self.config
        t = cfg.latent_shape[0]
        device = self.fc_in.weight.device
        if labels is not None and not cfg.n_classes:
            raise ValueError("labels given, but this model is not class-conditional (n_classes=0)")
        if actions is not None and not cfg.action_dim:
            raise ValueError("actions given, but this model is not action-conditional (action_dim=0)")
        if not cfg.cond_dim:
            return None
        parts = []
        if cfg.n_classes:
            if labels is None:
                raise ValueError(f"labels (B,) are required: this model is class-conditional "
                                 f"({cfg.n_classes} classes)")
            labels = torch.as_tensor(labels, device=device)
            if labels.shape != (batch,) or labels.is_floating_point():
                raise ValueError(f"labels must be an integer tensor of shape ({batch},), got "
                                 f"{tuple(labels.shape)} {labels.dtype}")
            if labels.min() < 0 or labels.max() >= cfg.n_classes:
                raise ValueError(f"labels must lie in [0, {cfg.n_classes}), got {labels.tolist()}")
            onehot = F.one_hot(labels.long(), cfg.n_classes).float()
            parts.append(onehot[:, None].expand(batch, t, cfg.n_classes))
        if cfg.action_dim:
            if actions is None:
                raise ValueError(f"actions (B, {cfg.sequence_length}, {cfg.action_dim}) are required: this "
                                 "model is action-conditional")
            actions = torch.as_tensor(actions, device=device, dtype=torch.float32)
            if actions.shape != (batch, cfg.sequence_length, cfg.action_dim):
                raise ValueError(f"actions must have shape ({batch}, {cfg.sequence_length}, {cfg.action_dim}) "
                                 f"(one row per frame), got {tuple(actions.shape)}")
            if not torch.isfinite(actions).all():
                raise ValueError("actions contain NaN or infinite values")
            # Each latent time step sees the actions of the frames it covers.
            parts.append(self.action_mlp(actions.reshape(batch, t, -1)))
        cond = torch.cat(parts, dim=-1)
        if drop is not None:
            cond = cond * (~drop).to(cond.dtype)[:, None, None]
        return cond

    def frame_features(self, frames: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        """(B, K*H/4*W/4, C) position-embedded features of the conditioning frames, or None."""
        cfg = self.config
        if not cfg.n_cond_frames:
            if frames is not None:
                raise ValueError("frames given, but this model is not frame-conditional (n_cond_frames=0)")
            return None
        expected = (batch, 3, cfg.n_cond_frames, cfg.resolution, cfg.resolution)
        if frames is None:
            raise ValueError(f"frames {expected} are required: this model conditions on "
                             f"{cfg.n_cond_frames} first frame(s)")
        if not isinstance(frames, torch.Tensor) or not frames.is_floating_point() or frames.dim() != 5 \
                or frames.shape[2] < cfg.n_cond_frames or frames.shape[:2] != expected[:2] \
                or frames.shape[3:] != expected[3:]:
            shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
            raise ValueError(f"frames must be a float tensor {expected} in [-0.5, 0.5], got {shape}")
        if frames.min() < -0.5 - 1e-3 or frames.max() > 0.5 + 1e-3:
            raise ValueError("frames must lie in [-0.5, 0.5] (uint8 / 255 - 0.5)")
        frames = frames[:, :, : cfg.n_cond_frames].to(self.fc_in.weight.dtype)
        features = self.frame_encoder(frames)  # (B, K, h, w, C)
        return (features.flatten(1, 3) + self.frame_pos_embd.table()).contiguous()

    def condition(self, batch: int, frames=None, labels=None, actions=None,
                  drop: torch.Tensor | None = None) -> Condition:
        cond = self.condition_vector(batch, labels, actions, drop)
        features = self.frame_features(frames, batch)
        frame_kv = None
        if features is not None:
            frame_kv = [block.enc_attn.project_kv(features) for block in self.blocks]
        return Condition([n.affine(cond) for n in self.all_norms()], frame_kv)

    # ---- teacher-forced forward ---------------------------------------------------------------------

    def _blocks(self, x: torch.Tensor, condition: Condition, affine_view) -> torch.Tensor:
        """Run the blocks on x (B, L, d) without a cache; affine_view shapes each (g, b) to broadcast."""
        affines = iter(condition.norm_affines)
        attn_dropout = self.config.attn_dropout if self.training else 0.0
        for i, block in enumerate(self.blocks):
            h = block.pre_attn_norm.normalize(x, *affine_view(next(affines)))
            x = x + block.dropout(block.attn(h, h, causal=True, dropout_p=attn_dropout))
            if block.use_frames:
                h = block.pre_enc_norm.normalize(x, *affine_view(next(affines)))
                q = block.enc_attn.split_heads(block.enc_attn.w_qs(h), block.enc_attn.d_k)
                x = x + block.dropout(block.enc_attn.attend(q, *condition.frame_kv[i]))
            h = block.pre_fc_norm.normalize(x, *affine_view(next(affines)))
            x = x + block.dropout(block.fc_block(h))
        return self.norm.normalize(x, *affine_view(next(affines)))

    def forward(self, codes: torch.Tensor, frames=None, labels=None, actions=None) -> torch.Tensor:
        """codes (B, t, h, w) -> logits (B, t, h, w, n_codes); logits at a position see only earlier codes."""
        self.check_codes(codes)
        batch = codes.shape[0]
        drop = None
        if self.training and self.config.cond_drop_prob > 0 and self.config.cond_dim:
            drop = torch.rand(batch, device=codes.device) < self.config.cond_drop_prob
        condition = self.condition(batch, frames, labels, actions, drop)
        x = self.fc_in(F.embedding(codes.flatten(1), self.codebook))  # (B, L, d)
        x = torch.cat([self.sos.expand(batch, 1, -1).to(x.dtype), x[:, :-1]], dim=1) + self.pos_embd.table()
        t, h, w = self.latent_shape

        def per_position(affine):
            g, b = affine
            if g.dim() == 1:
                return g, b
            return (g.repeat_interleave(h * w, dim=1), b.repeat_interleave(h * w, dim=1))

        x = self._blocks(x, condition, per_position)
        return self.fc_out(x).view(batch, t, h, w, self.n_codes)

    def loss(self, codes: torch.Tensor, frames=None, labels=None, actions=None) -> dict[str, torch.Tensor]:
        """Cross-entropy of the codes in nats per latent token, and the same in bits."""
        logits = self(codes, frames=frames, labels=labels, actions=actions)
        loss = F.cross_entropy(logits.flatten(0, -2).float(), codes.flatten())
        return dict(loss=loss, bits_per_token=loss.detach() / math.log(2))

    # ---- cached decoding ----------------------------------------------------------------------------

    @torch.no_grad()
    def start_decoding(self, batch: int, frames=None, labels=None, actions=None,
                       drop: torch.Tensor | None = None, quantize: str | None = None,
                       static: bool = False) -> DecodeState:
        """Compute once what every token needs and allocate the static KV caches.

        quantize="int8" (CPU only): the step's linear layers use int8 weights with a scale per output
        channel (about 2 % relative error in the logits at the reference BAIR size, random weights).
        static=True, for a step replayed as a CUDA graph: the state's tensors stay at the same addresses
        from one generation to the next (kept by the model per shape, refilled here) and are marked
        static, so the graph may write the KV caches and is recorded once, not per generation. Call the
        state's release() when done; generations running at once each get a state of their own.
        """
        check_quantize(quantize, self.fc_in.weight.device)
        if static and quantize is not None:
            raise ValueError("quantize is for the CPU decode step; static=True is for CUDA graphs: use one")
        condition = self.condition(batch, frames, labels, actions, drop)
        weight = self.fc_in.weight
        dtype = weight.dtype
        cfg = self.config
        length = cfg.seq_len
        head = self.blocks[0].attn
        caches = [(torch.zeros(batch, cfg.n_heads, length, head.d_k, device=weight.device, dtype=dtype),
                   torch.zeros(batch, cfg.n_heads, length, head.d_v, device=weight.device, dtype=dtype))
                  for _ in self.blocks]
        state = DecodeState(condition=condition, code_inputs=self.fc_in(self.codebook),
                            positions=self.pos_embd.table(), caches=caches,
                            weights=[_decode_weights(block, quantize) for block in self.blocks],
                            out_weight=_decode_matrix(self.fc_out.weight, quantize), batch=batch)
        return self._kept_state(state) if static else state

    def _apply(self, fn, recurse=True):
        # .to() / .cuda() / .half(): kept decode states are of the old device or dtype; drop them.
        self._static_states.clear()
        return super()._apply(fn, recurse)

    def _kept_state(self, fresh: DecodeState) -> DecodeState:
        """A free kept state of fresh's shapes, refilled with fresh's values (a copy of fresh if none)."""
        tensors = _state_tensors(fresh)
        key = tuple((t.shape, t.dtype, t.device) for t in tensors)
        with _KEPT_STATES_LOCK:
            kept = next((state for state in self._static_states.get(key, ()) if not state.in_use), None)
            if kept is not None:
                kept.in_use = True
        if kept is None:
            # Copies: the model's own parameters must not be marked, nor refilled in place later.
            kept = _map_state_tensors(fresh, torch.Tensor.clone)
            from torch._dynamo import mark_static_address

            for tensor in _state_tensors(kept):
                mark_static_address(tensor)
            kept.in_use = True
            with _KEPT_STATES_LOCK:
                self._static_states.setdefault(key, []).append(kept)
        else:
            for target, source in zip(_state_tensors(kept), tensors, strict=True):
                target.copy_(source)
        return kept

    def _cached_blocks(self, x: torch.Tensor, state: DecodeState, start: int | torch.Tensor) -> torch.Tensor:
        """Positions start .. start+n-1 of x (B, n, d), attending to the cache; writes their K/V into it.

        `start` as a Python int slices the cache to the visible prefix (fastest eagerly). As a (1,) tensor
        (single token) every shape is static, so the step can be compiled and captured in a CUDA graph.
        """
        n = x.shape[1]
        hw = self.latent_shape[1] * self.latent_shape[2]
        static = isinstance(start, torch.Tensor)
        if static:
            steps, end = start // hw, None
            mask = (torch.arange(self.config.seq_len, device=x.device) <= start).view(1, -1)
        else:
            end = start + n
            steps = None if n == 1 else torch.arange(start, end, device=x.device) // hw
            # One query sees the whole prefix; a block of queries (prefill, from 0) is plainly causal.
            if n > 1 and start:
                raise ValueError("several positions at once are only supported from position 0 (prefill)")

        def at_positions(affine):
            g, b = affine
            if g.dim() == 1:
                return g, b
            if steps is None:  # narrow, not a slice: a compiled step then serves every time step
                return g.narrow(1, start // hw, 1), b.narrow(1, start // hw, 1)
            return g[:, steps], b[:, steps]

        affines = iter(state.condition.norm_affines)
        for i, block in enumerate(self.blocks):
            attn, weights = block.attn, state.weights[i]
            k_cache, v_cache = state.caches[i]
            h = block.pre_attn_norm.normalize(x, *at_positions(next(affines)))
            q, k, v = _linear(h, weights["qkv"]).split(
                [attn.n_heads * attn.d_k, attn.n_heads * attn.d_k, attn.n_heads * attn.d_v], dim=-1)
            q, k, v = attn.split_heads(q, attn.d_k), attn.split_heads(k, attn.d_k), attn.split_heads(v, attn.d_v)
            if static:
                k_cache.index_copy_(2, start, k)
                v_cache.index_copy_(2, start, v)
                out = F.scaled_dot_product_attention(q, k_cache, v_cache, attn_mask=mask)
            else:
                k_cache[:, :, start:end] = k
                v_cache[:, :, start:end] = v
                out = F.scaled_dot_product_attention(q, k_cache[:, :, :end], v_cache[:, :, :end],
                                                     is_causal=n > 1)
            x = x + _linear(attn.merge_heads(out), weights["attn_out"], weights["attn_out_bias"])
            if block.use_frames:
                cross = block.enc_attn
                h = block.pre_enc_norm.normalize(x, *at_positions(next(affines)))
                q = cross.split_heads(_linear(h, weights["cross_q"]), cross.d_k)
                out = F.scaled_dot_product_attention(q, *state.condition.frame_kv[i])
                x = x + _linear(cross.merge_heads(out), weights["cross_out"], weights["cross_out_bias"])
            h = block.pre_fc_norm.normalize(x, *at_positions(next(affines)))
            h = _linear(h, weights["fc1"], weights["fc1_bias"])
            x = x + _linear(h * torch.sigmoid(1.702 * h), weights["fc2"], weights["fc2_bias"])
        return _linear(self.norm.normalize(x, *at_positions(next(affines))), state.out_weight)

    @torch.no_grad()
    def prefill(self, state: DecodeState, prefix: torch.Tensor | None = None) -> torch.Tensor:
        """Feed the start token and the known prefix codes (B, n) in raster order; returns the logits
        (B, n_codes) for position n, i.e. the distribution of the first code to sample."""
        batch = state.batch
        x = self.sos.to(state.positions.dtype).expand(batch, 1, -1)
        if prefix is not None:
            if not isinstance(prefix, torch.Tensor) or prefix.is_floating_point() or prefix.dim() != 2 \
                    or prefix.shape[0] != batch:
                shape = tuple(prefix.shape) if isinstance(prefix, torch.Tensor) else type(prefix).__name__
                raise ValueError(f"prefix must be integer codes of shape ({batch}, n), got {shape}")
            if prefix.numel() and (prefix.min() < 0 or prefix.max() >= self.n_codes):
                raise ValueError(f"prefix codes must lie in [0, {self.n_codes}), got [{prefix.min().item()}, "
                                 f"{prefix.max().item()}]")
        if prefix is not None and prefix.shape[1]:
            if prefix.shape[1] >= self.config.seq_len:
                raise ValueError(f"a prefix of {prefix.shape[1]} codes leaves nothing to sample "
                                 f"(the grid holds {self.config.seq_len})")
            x = torch.cat([x, state.code_inputs[prefix]], dim=1)
        x = x + state.positions[: x.shape[1]]
        return self._cached_blocks(x, state, 0)[:, -1]

    @torch.no_grad()
    def decode_step(self, state: DecodeState, previous: torch.Tensor, position: int | torch.Tensor) -> torch.Tensor:
        """One token: `previous` (B,) is the code at position-1; returns logits (B, n_codes) for `position`
        (a Python int, or a (1,) int64 tensor for the static-shape path that torch.compile can capture).
        Codes are not range-checked here: that would cost a host sync per token (prefill checks its prefix)."""
        if previous.shape != (state.batch,):
            raise ValueError(f"previous must hold one code per sample, shape ({state.batch},), got "
                             f"{tuple(previous.shape)}")
        if isinstance(position, int) and not 0 < position < self.config.seq_len:
            raise ValueError(f"position must lie in [1, {self.config.seq_len}) (0 is the start token: use "
                             f"prefill), got {position}")
        x = (state.code_inputs[previous] + state.positions[position].view(1, -1))[:, None]
        return self._cached_blocks(x, state, position)[:, 0]

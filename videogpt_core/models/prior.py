"""The VideoGPT prior: a GPT over the VQ-VAE's codes, conditioned on first frames, a class, actions and/or a
vector per clip.

Teacher-forced `forward` for training, and `start_decoding` / `prefill` / `decode_step` / `verify` for
fast sampling with a static per-layer KV cache (see inference/sampling.py for the loop). Both run the same blocks
and block loop (prior_blocks.py); decoding runs them on a decoding copy whose linear layers use the decode
step's weight layouts (decoding.py). Parameter names follow the reference implementation where it has the
same parts, so its checkpoints convert with a few renames.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from videogpt_core.models.conditions import Conditions
from videogpt_core.models.config import VideoGPTConfig
from videogpt_core.models.decoding import DecodeState, new_state
from videogpt_core.models.frame_encoder import FrameEncoder
from videogpt_core.models.pretrained import PretrainedMixin
from videogpt_core.models.prior_blocks import (BlockCondition, Condition, GeLU2, PriorBlock, PriorLayerNorm,
                                               run_blocks)
from videogpt_core.models.quantization import check_quantize

__all__ = ["BroadcastPosEmbed", "Condition", "DecodeState", "GeLU2", "PriorBlock", "PriorLayerNorm", "VideoGPT"]


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


def with_codes_replaced(codes: torch.Tensor, replacement: torch.Tensor, max_rate: float) -> torch.Tensor:
    """codes (B, T, ...) with each clip's codes past its first latent slice taken from replacement at a rate
    drawn from [0, max_rate]. The first slice stays exact: a rollout starts from the given frame's codes."""
    rate = torch.rand(codes.shape[0], *(1,) * (codes.dim() - 1), device=codes.device) * max_rate
    replaced = torch.rand(codes.shape, device=codes.device) < rate
    replaced[:, 0] = False
    return torch.where(replaced, replacement, codes)


def with_random_codes(codes: torch.Tensor, max_rate: float, n_codes: int) -> torch.Tensor:
    """with_codes_replaced by uniform random codes."""
    return with_codes_replaced(codes, torch.randint_like(codes, n_codes), max_rate)


CONTEXT_NOISE_SOURCES = ("random", "prior")


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
        if config.context_dim:
            self.context_proj = nn.Linear(config.context_dim, config.context_embed_dim)
        self.fc_in = nn.Linear(config.embedding_dim, d, bias=False)
        nn.init.normal_(self.fc_in.weight, std=0.02)
        self.sos = nn.Parameter(torch.randn(d) * 0.02)
        self.pos_embd = BroadcastPosEmbed(config.latent_shape, d)
        self.blocks = nn.ModuleList(PriorBlock(config, frame_dim) for _ in range(config.n_layers))
        self.norm = PriorLayerNorm(d, config.cond_dim, config.n_classes)
        self.fc_out = nn.Linear(d, config.n_codes, bias=False)
        nn.init.zeros_(self.fc_out.weight)
        # Not submodules (the state dict stays the model's): decoding copies per weight format, and the
        # decode states kept for CUDA graphs (see start_decoding).
        self.decoders: dict[str | None, nn.Module] = {}
        self.static_states: dict[tuple, list[DecodeState]] = {}

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

    def check_codes(self, codes: torch.Tensor) -> None:
        if not isinstance(codes, torch.Tensor) or codes.is_floating_point() or codes.dim() != 4 \
                or tuple(codes.shape[1:]) != self.latent_shape:
            shape = tuple(codes.shape) if isinstance(codes, torch.Tensor) else type(codes).__name__
            raise ValueError(f"codes must be an integer tensor (B, {', '.join(map(str, self.latent_shape))}), "
                             f"got {shape}")
        if codes.min() < 0 or codes.max() >= self.n_codes:
            raise ValueError(f"codes must lie in [0, {self.n_codes}), got [{codes.min().item()}, "
                             f"{codes.max().item()}]")

    def condition_vector(self, conditions: Conditions, batch: int, drop: torch.Tensor | None = None):
        """(B, t, cond_dim) driving the conditional LayerNorms, or None for a model without them.

        `drop` (B,) bool zeroes the whole vector of those samples: the unconditional branch of guidance.
        """
        cfg = self.config
        if not cfg.cond_dim:
            return None
        t = cfg.latent_shape[0]
        parts = []
        if cfg.n_classes:
            onehot = F.one_hot(conditions.labels.long(), cfg.n_classes).float()
            parts.append(onehot[:, None].expand(batch, t, cfg.n_classes))
        if cfg.action_dim:
            actions = conditions.actions.to(self.fc_in.weight.device, torch.float32)
            # Each latent time step sees the actions of the frames it covers.
            parts.append(self.action_mlp(actions.reshape(batch, t, -1)))
        if cfg.context_dim:
            context = self.context_proj(conditions.context.to(self.fc_in.weight.device, torch.float32))
            parts.append(context[:, None].expand(batch, t, -1))  # the same for every latent time step
        cond = torch.cat(parts, dim=-1)
        if drop is not None:
            cond = cond * (~drop).to(cond.dtype)[:, None, None]
        return cond

    def frame_features(self, frames: torch.Tensor | None) -> torch.Tensor | None:
        """(B, K*H/4*W/4, C) position-embedded features of the conditioning frames, or None."""
        if not self.config.n_cond_frames:
            return None
        frames = frames[:, :, : self.config.n_cond_frames].to(self.fc_in.weight.dtype)
        features = self.frame_encoder(frames)  # (B, K, h, w, C)
        return (features.flatten(1, 3) + self.frame_pos_embd.table()).contiguous()

    def condition(self, conditions: Conditions, batch: int, drop: torch.Tensor | None = None) -> Condition:
        """What every block needs of the conditions (checked here against this prior's config)."""
        conditions.check(self.config, batch)
        cond = self.condition_vector(conditions, batch, drop)
        features = self.frame_features(conditions.frames)
        blocks = [BlockCondition([norm.affine(cond) for norm in block.norms()],
                                 None if features is None else block.enc_attn.project_kv(features))
                  for block in self.blocks]
        return Condition(blocks, self.norm.affine(cond))

    # ---- teacher-forced forward ---------------------------------------------------------------------

    def teacher_forced(self, codes: torch.Tensor, condition: Condition) -> torch.Tensor:
        """Logits (B, n+1, n_codes) of positions 0..n given the codes (B, n) of positions 0..n-1, no cache."""
        batch, n = codes.shape
        x = self.fc_in(F.embedding(codes, self.codebook))
        x = torch.cat([self.sos.expand(batch, 1, -1).to(x.dtype), x], dim=1) + self.pos_embd.table()[: n + 1]
        return run_blocks(self.blocks, self.fc_out, x, condition.at(0, n + 1, self.latent_shape))

    def forward(self, codes: torch.Tensor, **conditions) -> torch.Tensor:
        """codes (B, t, h, w) -> logits (B, t, h, w, n_codes); logits at a position see only earlier codes.
        conditions: the Conditions fields this prior needs, as keywords (frames=, labels=, actions=)."""
        self.check_codes(codes)
        batch = codes.shape[0]
        drop = None
        if self.training and self.config.cond_drop_prob > 0 and self.config.cond_dim:
            drop = torch.rand(batch, device=codes.device) < self.config.cond_drop_prob
        condition = self.condition(Conditions.from_inputs(codes.device, **conditions), batch, drop)
        logits = self.teacher_forced(codes.flatten(1)[:, :-1], condition)
        return logits.view(batch, *self.latent_shape, self.n_codes)

    def loss(self, codes: torch.Tensor, context_noise: float = 0.0, context_noise_from: str = "random",
             **conditions) -> dict[str, torch.Tensor]:
        """Cross-entropy of the codes in nats per latent token, and the same in bits.

        context_noise > 0: each clip's input codes after the first latent slice are replaced at a rate drawn
        from [0, context_noise] (the targets stay the true codes), so the prior learns to continue a context
        with errors in it, as its own sampled frames have when a rollout goes on. context_noise_from: "random"
        replaces them by uniform random codes; "prior" by codes this prior samples from a teacher-forced pass
        without gradient (errors like its own: parallel scheduled sampling, one more forward pass a step)."""
        inputs = codes
        if context_noise:
            if context_noise_from not in CONTEXT_NOISE_SOURCES:
                raise ValueError(f"context_noise_from is one of {CONTEXT_NOISE_SOURCES}; got {context_noise_from!r}")
            if context_noise_from == "prior":
                with torch.no_grad():
                    probs = F.softmax(self(codes, **conditions).flatten(0, -2).float(), dim=-1)
                    inputs = with_codes_replaced(codes, torch.multinomial(probs, 1).view_as(codes), context_noise)
            else:
                inputs = with_random_codes(codes, context_noise, self.n_codes)
        logits = self(inputs, **conditions)
        loss = F.cross_entropy(logits.flatten(0, -2).float(), codes.flatten())
        return dict(loss=loss, bits_per_token=loss.detach() / math.log(2))

    # ---- cached decoding ----------------------------------------------------------------------------

    @torch.no_grad()
    def start_decoding(self, batch: int, conditions: Conditions | None = None, drop: torch.Tensor | None = None,
                       quantize: str | None = None, static: bool = False) -> DecodeState:
        """Compute once what every token needs of the conditions (one window's, their prefix aside: the
        sampler feeds it) and allocate the static KV caches.

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
        condition = self.condition(conditions or Conditions(), batch, drop)
        return new_state(self, condition, batch, quantize, static)

    @torch.no_grad()
    def set_actions(self, state: DecodeState, conditions: Conditions, drop: torch.Tensor | None = None) -> None:
        """Give a running generation new class / action rows, the frames' keys and values kept: a player
        chooses each latent slice's actions just before it is sampled. Positions already fed keep what they
        saw; the rows of time steps not yet reached take effect. Not for a static (CUDA-graph) state."""
        conditions.check(self.config, state.batch)
        cond = self.condition_vector(conditions, state.batch, drop)
        blocks = [BlockCondition([norm.affine(cond) for norm in block.norms()], old.frame_kv)
                  for block, old in zip(self.blocks, state.condition.blocks, strict=True)]
        state.condition = Condition(blocks, self.norm.affine(cond))
        state.step_conditions.clear()

    def _apply(self, fn, recurse=True):
        # .to() / .cuda() / .half(): decoding copies and kept decode states are of the old device or dtype.
        self.decoders.clear()
        self.static_states.clear()
        return super()._apply(fn, recurse)

    def _check_codes_for(self, state: DecodeState, codes: torch.Tensor, what: str) -> None:
        if not isinstance(codes, torch.Tensor) or codes.is_floating_point() or codes.dim() != 2 \
                or codes.shape[0] != state.batch:
            shape = tuple(codes.shape) if isinstance(codes, torch.Tensor) else type(codes).__name__
            raise ValueError(f"{what} must be integer codes of shape ({state.batch}, n), got {shape}")
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.n_codes):
            raise ValueError(f"{what} codes must lie in [0, {self.n_codes}), got [{codes.min().item()}, "
                             f"{codes.max().item()}]")

    @torch.no_grad()
    def prefill(self, state: DecodeState, prefix: torch.Tensor | None = None) -> torch.Tensor:
        """Feed the start token and the known prefix codes (B, n) in raster order; returns the logits
        (B, n_codes) for position n, i.e. the distribution of the first code to sample."""
        if prefix is not None:
            self._check_codes_for(state, prefix, "prefix")
            if prefix.shape[1] >= self.config.seq_len:
                raise ValueError(f"a prefix of {prefix.shape[1]} codes leaves nothing to sample "
                                 f"(the grid holds {self.config.seq_len})")
        return state.decoder.prefill(state, prefix)

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
        return state.decoder.step(state, previous[:, None], position)[:, 0]

    @torch.no_grad()
    def verify(self, state: DecodeState, codes: torch.Tensor, position: int) -> torch.Tensor:
        """Score k tokens in one pass, as k decode steps would: `codes` (B, k) are the codes at positions
        position-1 .. position+k-2 (the last one drawn, then proposals for the next ones); returns the logits
        (B, k, n_codes) for positions position .. position+k-1. The cache must hold positions before
        `position`; entries written past an accepted proposal are overwritten by later steps."""
        self._check_codes_for(state, codes, "codes")
        k = codes.shape[1]
        if not isinstance(position, int) or isinstance(position, bool) or k < 1 \
                or not 0 < position <= self.config.seq_len - k:
            raise ValueError(f"verify needs 1 <= k and 1 <= position <= {self.config.seq_len} - k (an int), got "
                             f"k={k}, position={position!r}")
        return state.decoder.step(state, codes, position)

"""One window of the prior sampled a latent time slice at a time, each slice's actions given just before it.

An interactive player decides the actions of the next slice only when it is due, so the whole window cannot
be sampled in one call. A `SliceSampler` keeps the generation's KV cache between slices: a slice costs only
its own tokens (no re-encoding of the past, no re-feeding of the prefix). The code drawn last in a slice is
fed to the prior only when the next slice's actions are known, since its position already belongs to the
next time step. `rewind` takes slices back (an undo): the cache entries past the new end are simply
overwritten by what is fed next.
"""
from __future__ import annotations

import torch

from videogpt_core.conditions import Conditions
from videogpt_core.decode_step import DecodeStep
from videogpt_core.non_finite import check_finite_logits
from videogpt_core.prior import VideoGPT
from videogpt_core.sampling import CodePicker
from videogpt_core.sampling_options import SamplingOptions


class SliceSampler:
    def __init__(self, prior: VideoGPT, batch: int = 1, conditions: Conditions | None = None, *,
                 options: SamplingOptions | None = None, quantize: str | None = None, step: DecodeStep | None = None):
        """conditions: the window's frames (of a frame-conditional prior), the action rows (B, n, action_dim)
        known so far from the window's first frame (next_slice fills the rest), and the prefix: known leading
        whole slices (B, s * h * w), e.g. the last slices of the previous window. step: the pipeline's decode
        step; a CUDA-graph step is run eagerly here, since a window held between a player's steps would keep a
        state at the graph's fixed addresses busy for as long as the player plays."""
        cfg = prior.config
        t, h, w = prior.latent_shape
        conditions = conditions or Conditions()
        self.prior, self.batch, self.quantize = prior, batch, quantize
        self.step = step if step is not None and not step.static else DecodeStep.eager(prior)
        self.slice_len, self.fpl = h * w, cfg.frames_per_latent
        options = options or SamplingOptions()
        options.check_for(prior)
        device = prior.fc_in.weight.device
        self.codes = torch.zeros(batch, t * h * w, dtype=torch.long, device=device)
        prefix = conditions.prefix
        self.position = 0 if prefix is None else prefix.shape[1]
        if self.position % self.slice_len or self.position >= self.codes.shape[1]:
            raise ValueError(f"prefix must hold whole slices of {self.slice_len} codes, fewer than {t}; got "
                             f"{self.position} codes")
        actions = None
        if cfg.action_dim:
            actions = torch.zeros(batch, cfg.sequence_length, cfg.action_dim, device=device)
            if conditions.actions is not None:
                actions[:, : conditions.actions.shape[1]] = conditions.actions
        self.conditions = conditions.replace(actions=actions)
        self.picker = CodePicker(options, batch, device, None)
        self.state = prior.start_decoding(self.picker.rows, self.picker.doubled(self.conditions),
                                          drop=self.picker.drop, quantize=quantize)  # checks the conditions
        if prefix is not None:
            self.codes[:, :self.position] = prefix
        self._pending: torch.Tensor | None = None  # the last drawn code, not yet fed

    @property
    def actions(self) -> torch.Tensor | None:
        """(B, sequence_length, action_dim): the window's action rows (zeros for slices not yet sampled)."""
        return self.conditions.actions

    @property
    def slices_done(self) -> int:
        return self.position // self.slice_len

    @property
    def full(self) -> bool:
        return self.position >= self.codes.shape[1]

    def grid(self) -> torch.Tensor:
        """(B, slices_done, h, w): the window's codes so far."""
        t, h, w = self.prior.latent_shape
        return self.codes[:, : self.position].view(self.batch, -1, h, w)

    @torch.no_grad()
    def next_slice(self, rows: torch.Tensor | None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample the next slice with its frames' action rows (B, frames_per_latent, action_dim) -> its codes
        (B, h, w). Raises ValueError when the window is full or the rows do not fit."""
        if self.full:
            raise ValueError("the window is full: start a new one (e.g. from its last slices)")
        step = self.slices_done
        if self.actions is not None:
            expected = (self.batch, self.fpl, self.actions.shape[2])
            if rows is None or tuple(rows.shape) != expected:
                raise ValueError(f"rows must have shape {expected}, got {None if rows is None else tuple(rows.shape)}")
            self.actions[:, step * self.fpl:(step + 1) * self.fpl] = rows
            self.prior.set_actions(self.state, self.picker.doubled(self.conditions), drop=self.picker.drop)
        self.picker.generator = generator
        doubled = self.picker.doubled
        if self._pending is None:
            logits = self.prior.prefill(self.state, doubled(self.codes[:, : self.position]))
        else:
            logits = self.step.run(self.state, doubled(self._pending), self.position)
        end = self.position + self.slice_len
        for position in range(self.position, end):
            if position > self.position:
                logits = self.step.run(self.state, doubled(drawn), position)
            drawn = self.picker.pick(logits, self.codes[:, :position])
            self.codes[:, position] = drawn
        check_finite_logits(logits, step + 1)
        self._pending, self.position = drawn, end
        return self.codes[:, end - self.slice_len:end].view(self.batch, *self.prior.latent_shape[1:])

    def set_options(self, options: SamplingOptions) -> None:
        """Sample the following slices with these settings (guidance stays as the window began)."""
        options.check_for(self.prior)
        self.picker.set_options(options)

    def rewind(self, slices: int) -> None:
        """Take back the last `slices` slices: the next slice is sampled where they began."""
        if not 0 <= slices <= self.slices_done:
            raise ValueError(f"can rewind 0..{self.slices_done} slices, got {slices}")
        self.position -= slices * self.slice_len
        self._pending = self.codes[:, self.position - 1].clone() if self.position else None

"""The cached decode loop: one window of the prior sampled a latent time slice at a time (`WindowSampler`), for
the pipeline's generate and stream, evaluation (`generate_codes`) and Play.

A window keeps its KV cache between slices, so a slice costs only its own tokens (no re-encoding of the past,
no re-feeding of the prefix). The code drawn last in a slice is fed to the prior only when the next slice is
asked for, since its position already belongs to the next time step, whose actions a player may choose just
before it. `rewind` takes slices back (an undo): the cache entries past the new end are simply overwritten by
what is fed next. Codes are drawn one per decode step or, with a `Speculation`, several per verify pass.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from videogpt_core.inference.code_picker import CodePicker
from videogpt_core.inference.decode_step import DecodeStep
from videogpt_core.inference.non_finite import check_finite_logits
from videogpt_core.inference.sampling_options import SamplingOptions
from videogpt_core.inference.speculative import SpeculationStats, accept_proposals, check_draft, propose
from videogpt_core.models.conditions import Conditions
from videogpt_core.models.prior import VideoGPT


@dataclass(frozen=True)
class Speculation:
    """Exact speculative sampling (speculative.py): `draft_tokens` codes scored per verify pass, the next ones
    proposed by copying (`draft`); `stats` is filled with what it did."""

    draft_tokens: int
    draft: str = "left"
    stats: SpeculationStats = field(default_factory=SpeculationStats)


class WindowSampler:
    def __init__(self, prior: VideoGPT, batch: int = 1, conditions: Conditions | None = None, *,
                 options: SamplingOptions | None = None, generator: torch.Generator | None = None,
                 quantize: str | None = None, step: DecodeStep | None = None,
                 speculation: Speculation | None = None):
        """conditions: the window's (frames, class, actions, prefix); action rows may stop short of the window
        (a player's: the rest are given to next_slice). quantize: None (float weights) or "int8" (CPU), see
        `VideoGPT.start_decoding`. step: how the one-token step runs (a pipeline's DecodeStep; default:
        eager). speculation: several codes per verify pass; not with a static-shape step (whole_cache,
        cuda_graph), which runs one code per step. Call release() when done (a CUDA-graph state is kept for the next generation)."""
        options = options or SamplingOptions()
        options.check_for(prior)
        t, h, w = prior.latent_shape
        self.prior, self.batch, self.slice_len = prior, batch, h * w
        self.step = step or DecodeStep.eager(prior)
        self.speculation = None if self.step.static else speculation
        device = prior.fc_in.weight.device
        conditions = conditions or Conditions()
        # A player's window gets its later slices' action rows one slice at a time (next_slice): nothing past
        # the slice being sampled may be drawn before its rows are known.
        given = conditions.actions
        self.rows_to_come = given is not None and given.shape[1] < prior.config.sequence_length
        self.conditions = conditions.replace(actions=_window_actions(prior.config, conditions.actions, batch, device))
        self.picker = CodePicker(options, batch, device, generator)
        self.state = prior.start_decoding(self.picker.rows, self.picker.doubled(self.conditions), drop=self.picker.drop,
                                          quantize=quantize, static=self.step.kept_states)  # checks the conditions
        self.quantize = quantize
        self.codes = torch.zeros(batch, t * h * w, dtype=torch.long, device=device)
        self.position = 0 if conditions.prefix is None else conditions.prefix.shape[1]  # the next code to draw
        if conditions.prefix is not None:
            self.codes[:, :self.position] = conditions.prefix
        self._position_ids = torch.arange(t * h * w, device=device)
        self._pending: torch.Tensor | None = None  # the code drawn last, not yet fed (None: nothing fed yet)

    # ---- where the window stands --------------------------------------------------------------------

    @property
    def slices_done(self) -> int:
        return self.position // self.slice_len

    @property
    def full(self) -> bool:
        return self.position >= self.codes.shape[1]

    @property
    def actions(self) -> torch.Tensor | None:
        """(B, sequence_length, action_dim): the window's action rows (zeros for slices not yet given)."""
        return self.conditions.actions

    def grid(self) -> torch.Tensor:
        """(B, slices_done, h, w): the window's whole slices so far."""
        _, h, w = self.prior.latent_shape
        return self.codes[:, : self.slices_done * self.slice_len].view(self.batch, -1, h, w)

    def release(self) -> None:
        self.state.release()

    def slid(self, keep: int, frames: torch.Tensor | None = None) -> "WindowSampler":
        """The window after this full one, which it releases: its last `keep` slices as their codes were sampled
        (the new window's prefix; nothing decoded or re-encoded), the action rows shifted along (the new
        slices' rows are given to next_slice), and for a frame-conditional prior `frames`, the first frames of
        the kept slices (B, 3, K, res, res). Options, generator, quantization and step stay as they were."""
        if not self.full:
            raise ValueError("only a full window slides; sample its remaining slices first")
        t = self.prior.latent_shape[0]
        if not 1 <= keep < t:
            raise ValueError(f"a window of {t} slices keeps 1..{t - 1} slices when it slides, got {keep}")
        shift = t - keep
        actions = self.actions
        conditions = self.conditions.replace(
            frames=frames, prefix=self.grid()[:, shift:].flatten(1),
            actions=None if actions is None else actions[:, shift * self.prior.config.frames_per_latent:])
        self.release()
        return WindowSampler(self.prior, self.batch, conditions, options=self.picker.options,
                             generator=self.picker.generator, quantize=self.quantize, step=self.step,
                             speculation=self.speculation)

    # ---- sampling -----------------------------------------------------------------------------------

    def set_options(self, options: SamplingOptions) -> None:
        """Sample the following slices with these settings (guidance stays as the window began)."""
        options.check_for(self.prior)
        self.picker.set_options(options)

    @torch.no_grad()
    def next_slice(self, rows: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample the next latent slice -> its codes (B, h, w). rows: the slice's action rows (B,
        frames_per_latent, action_dim), when they were not known at the start; generator: the draws' own
        generator from now on. Raises ValueError when the window is full or the rows do not fit."""
        if self.full:
            raise ValueError("the window is full: start a new one (e.g. from its last slices)")
        if rows is not None:
            self._set_rows(rows)
        if generator is not None:
            self.picker.generator = generator
        end = (self.slices_done + 1) * self.slice_len
        logits = self._speculate_until(end) if self.speculation else self._step_until(end)
        check_finite_logits(logits, self.slices_done)
        _, h, w = self.prior.latent_shape
        return self.codes[:, end - self.slice_len:end].view(self.batch, h, w)

    def rewind(self, slices: int) -> None:
        """Take back the last `slices` slices: the next slice is sampled where they began."""
        if not 0 <= slices <= self.slices_done:
            raise ValueError(f"can rewind 0..{self.slices_done} slices, got {slices}")
        self.position = (self.slices_done - slices) * self.slice_len
        self._pending = self.codes[:, self.position - 1].clone() if self.position else None

    def _set_rows(self, rows: torch.Tensor) -> None:
        fpl = self.prior.config.frames_per_latent
        expected = (self.batch, fpl, self.prior.config.action_dim)
        if self.actions is None or tuple(rows.shape) != expected:
            raise ValueError(f"rows must have shape {expected}, got {tuple(rows.shape)}")
        step = self.slices_done
        self.actions[:, step * fpl:(step + 1) * fpl] = rows
        self.prior.set_actions(self.state, self.picker.doubled(self.conditions), drop=self.picker.drop)

    def _first_logits(self) -> torch.Tensor:
        """The logits of the next position: from the start token and the prefix, or the pending code fed."""
        doubled = self.picker.doubled
        if self._pending is None:
            return self.prior.prefill(self.state, doubled(self.codes[:, :self.position]))
        return self.step.run(self.state, doubled(self._pending), self._where(self.position))

    def _where(self, position: int) -> int | torch.Tensor:
        return self.step.where(position, self._position_ids)

    def _step_until(self, end: int) -> torch.Tensor:
        """One code per decode step up to position `end`; returns the last logits."""
        logits, first = self._first_logits(), self.position
        for position in range(first, end):
            if position > first:
                # The code drawn last step, as drawn (contiguous: a compiled step guards on strides).
                logits = self.step.run(self.state, self.picker.doubled(drawn), self._where(position))
            drawn = self.picker.pick(logits, self.codes[:, :position])
            self.codes[:, position] = drawn
        self._pending, self.position = drawn, end
        return logits

    def _speculate_until(self, end: int) -> torch.Tensor:
        """Verify passes until position `end` is sampled (a pass may accept codes past it); the last logits."""
        codes, spec, doubled = self.codes, self.speculation, self.picker.doubled
        if self._pending is None:
            logits = self._first_logits()
            codes[:, self.position] = self.picker.pick(logits, codes[:, :self.position])
            self.position += 1
        last = self.position - 1  # drawn, not yet fed
        limit = end if self.rows_to_come else codes.shape[1]  # the last position a pass may score, plus one
        while last + 1 < end:
            k = min(spec.draft_tokens, limit - 1 - last)  # positions last+1 .. last+k scored in this pass
            proposals = propose(codes, last, k - 1, spec.draft, self.prior.latent_shape)
            scored = torch.cat([codes[:, last:last + 1], proposals], dim=1)  # the code drawn last, then proposals
            logits = self.prior.verify(self.state, doubled(scored), last + 1)
            # Position last+1+i is processed given the codes before it, proposals included.
            drawn = codes[:, :last + 1]
            probs = torch.stack([self.picker.target(logits[:, i], torch.cat([drawn, proposals[:, :i]], dim=1))
                                 for i in range(k)], dim=1).softmax(-1)  # (B, k, n_codes)
            kept, next_code, accepted = accept_proposals(probs, proposals, self.picker.generator)
            codes[:, last + 1:last + 1 + kept] = proposals[:, :kept]
            codes[:, last + 1 + kept] = next_code
            spec.stats.add_pass(kept, accepted)
            last += 1 + kept
        self._pending, self.position = codes[:, last], last + 1
        return logits


def _window_actions(config, actions: torch.Tensor | None, batch: int, device) -> torch.Tensor | None:
    """A window's action rows: those given, then zeros up to the window's frames (a player's later slices)."""
    if not config.action_dim or (actions is not None and actions.shape[1] >= config.sequence_length):
        return actions
    rows = torch.zeros(batch, config.sequence_length, config.action_dim, device=device)
    if actions is not None:
        rows[:, : actions.shape[1]] = actions
    return rows


def generate_codes(prior: VideoGPT, batch: int, conditions: Conditions | None = None, *,
                   options: SamplingOptions | None = None, generator: torch.Generator | None = None,
                   quantize: str | None = None, draft_tokens: int | None = None, draft: str = "left",
                   stats: SpeculationStats | None = None,
                   step: DecodeStep | None = None) -> Iterator[tuple[torch.Tensor, int]]:
    """Sample a latent grid in raster order. Yields (codes (B, t, h, w), slices_done) each time a latent time
    slice is complete (the prefix's whole slices first); codes past the finished slices are 0 or already partly
    sampled. draft_tokens: None samples one code per decode step; k >= 2 speculates (see Speculation), filling
    `stats`. The other arguments are WindowSampler's."""
    check_draft(draft, draft_tokens)
    speculation = None
    if draft_tokens is not None and draft_tokens > 1:
        speculation = Speculation(draft_tokens, draft, stats if stats is not None else SpeculationStats())
    window = WindowSampler(prior, batch, conditions, options=options, generator=generator, quantize=quantize,
                           step=step, speculation=speculation)
    grid = window.codes.view(batch, *prior.latent_shape)
    yielded = 0
    try:
        while True:
            while yielded < window.slices_done:  # the prefix's whole slices, then each one sampled
                yielded += 1
                yield grid, yielded
            if window.full:
                return
            window.next_slice()
    finally:  # also when the caller stops early (closes this generator)
        window.release()

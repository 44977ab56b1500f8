"""Token sampling for the prior: logit filters, guidance, and the cached decode loop, slice by slice.

Sampling never syncs with the host per token: a code is drawn as argmax(probs / Exponential(1)), which is
an exact draw from `probs`, and stays on the device until the caller asks for it.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from videogpt_core.decode_step import DecodeStep
from videogpt_core.non_finite import check_finite_logits
from videogpt_core.prior import VideoGPT
from videogpt_core.speculative import SpeculationStats, accept_proposals, check_draft, propose


def _number(name: str, value, rule: str) -> float:
    """A finite real number, or a ValueError naming the option; bools are refused, as `True` for 1.0 hides a
    mistake (a flag passed where a number belongs)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        kind = " (a bool, not a number)" if isinstance(value, (bool, np.bool_)) else ""
        raise ValueError(f"{name} must be {rule}, got {value!r}{kind}")
    return value


@dataclass
class SamplingOptions:
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    cfg_scale: float | None = None  # classifier-free guidance on the class / actions; None or 1 = off

    def check(self, prior: VideoGPT) -> None:
        rule = "a finite number > 0"
        if _number("temperature", self.temperature, rule) <= 0:
            raise ValueError(f"temperature must be {rule}, got {self.temperature!r}")
        if self.top_k is not None:
            rule = "a whole number >= 1 (or None)"  # a UI slider sends 8.0: any whole number will do
            k = _number("top_k", self.top_k, rule)
            if k != int(k) or k < 1:
                raise ValueError(f"top_k must be {rule}, got {k!r}")
            self.top_k = int(k)
        rule = "a number in (0, 1] (or None)"
        if self.top_p is not None and not 0 < _number("top_p", self.top_p, rule) <= 1:
            raise ValueError(f"top_p must be {rule}, got {self.top_p!r}")
        if self.cfg_scale is not None:
            rule = "a finite number >= 0 (or None)"
            if _number("cfg_scale", self.cfg_scale, rule) < 0:
                raise ValueError(f"cfg_scale must be {rule}, got {self.cfg_scale!r}")
            if not prior.config.cond_dim:
                raise ValueError("cfg_scale needs a class- or action-conditional model; this one has neither")

    @property
    def guided(self) -> bool:
        return self.cfg_scale is not None and self.cfg_scale != 1.0


def filter_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None) -> torch.Tensor:
    """Temperature, then keep the top_k codes, then the smallest set whose probability reaches top_p."""
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        # Drop a code when the codes ranked above it already reach top_p (the first one always stays).
        drop_sorted = (cumulative - sorted_logits.softmax(-1)) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def draw(logits: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One code per row of filtered logits (B, n_codes), without a host sync."""
    probs = logits.softmax(-1)
    noise = torch.empty_like(probs).exponential_(generator=generator)
    return (probs / noise).argmax(-1)


class CodePicker:
    """Logits -> codes under one generation's sampling options. With guidance every input is doubled: the
    second half of the batch is the same inputs with the condition dropped (`drop`)."""

    def __init__(self, options: SamplingOptions, batch: int, device: torch.device,
                 generator: torch.Generator | None):
        self.options, self.generator = options, generator
        self.drop = torch.arange(2 * batch, device=device) >= batch if options.guided else None
        self.rows = batch * (2 if self.drop is not None else 1)  # the batch the prior runs

    def doubled(self, x: torch.Tensor | None) -> torch.Tensor | None:
        return torch.cat([x, x]) if self.drop is not None and x is not None else x

    def target(self, logits: torch.Tensor) -> torch.Tensor:
        """The filtered logits to sample from: guidance mixed in, then temperature / top-k / top-p."""
        options = self.options
        if self.drop is not None:
            cond, uncond = logits.float().chunk(2)
            logits = uncond + options.cfg_scale * (cond - uncond)
        return filter_logits(logits, options.temperature, options.top_k, options.top_p)

    def pick(self, logits: torch.Tensor) -> torch.Tensor:
        return draw(self.target(logits), self.generator)


def generate_codes(prior: VideoGPT, batch: int, *, frames=None, labels=None, actions=None,
                   prefix: torch.Tensor | None = None, options: SamplingOptions | None = None,
                   generator: torch.Generator | None = None,
                   quantize: str | None = None, draft_tokens: int | None = None, draft: str = "left",
                   stats: SpeculationStats | None = None,
                   step: DecodeStep | None = None) -> Iterator[tuple[torch.Tensor, int]]:
    """Sample a latent grid in raster order. Yields (codes (B, t, h, w), slices_done) each time a latent
    time slice is complete; codes past the finished slices are 0 or already partly sampled. `prefix` (B, n)
    holds known leading codes. quantize: None (float weights) or "int8" (CPU), see
    `VideoGPT.start_decoding`.

    draft_tokens: None samples one code per decode step; k >= 2 proposes k - 1 codes by copying (`draft`,
    see speculative.py), scores them in one verify pass and accepts them by speculative sampling: the same
    distribution, fewer passes when proposals are often right. `stats` (a SpeculationStats) is filled with
    what speculation did. Not with a CUDA-graph step (static decoding), which runs one code per step.
    step: how the one-token step runs (a pipeline's DecodeStep); default: eager."""
    options = options or SamplingOptions()
    options.check(prior)
    check_draft(draft, draft_tokens)
    t, h, w = prior.latent_shape
    length, slice_len = t * h * w, h * w
    device = prior.fc_in.weight.device
    codes = torch.zeros(batch, length, dtype=torch.long, device=device)
    n_known = 0 if prefix is None else prefix.shape[1]
    if prefix is not None:
        if prefix.shape[0] != batch or n_known >= length:
            raise ValueError(f"prefix must be (batch={batch}, n < {length}) codes, got {tuple(prefix.shape)}")
        codes[:, :n_known] = prefix

    picker = CodePicker(options, batch, device, generator)
    step = step or DecodeStep.eager(prior)
    static = step.static
    state = prior.start_decoding(picker.rows, frames=picker.doubled(frames), labels=picker.doubled(labels),
                                 actions=picker.doubled(actions), drop=picker.drop, quantize=quantize, static=static)
    pick, doubled = picker.pick, picker.doubled

    position_ids = torch.arange(length, device=device)

    try:
        for done in range(n_known // slice_len):
            yield codes.view(batch, t, h, w), done + 1
        if draft_tokens is not None and draft_tokens > 1 and not static:
            with torch.no_grad():
                logits = prior.prefill(state, doubled(codes[:, :n_known]))
                codes[:, n_known] = pick(logits)
            yield from speculative_loop(prior, state, codes, n_known, draft_tokens, draft, picker.target, doubled,
                                        generator, stats)
            return
        with torch.no_grad():
            logits = prior.prefill(state, doubled(codes[:, :n_known]))
            for position in range(n_known, length):
                if position > n_known:
                    # The code drawn last step, as drawn (contiguous: a compiled step guards on strides).
                    logits = step.run(state, doubled(drawn), step.where(position, position_ids))
                drawn = pick(logits)
                codes[:, position] = drawn
                if (position + 1) % slice_len == 0:
                    check_finite_logits(logits, (position + 1) // slice_len)
                    yield codes.view(batch, t, h, w), (position + 1) // slice_len
    finally:  # also when the caller stops early (closes this generator)
        state.release()


def speculative_loop(prior: VideoGPT, state, codes: torch.Tensor, last: int, draft_tokens: int, draft: str,
                     target, doubled, generator: torch.Generator | None,
                     stats: SpeculationStats | None) -> Iterator[tuple[torch.Tensor, int]]:
    """The rest of generate_codes with verify passes: codes (B, L) are sampled up to `last` (its code drawn,
    not yet fed to the prior). Yields as generate_codes does."""
    batch, length = codes.shape
    t, h, w = prior.latent_shape
    slice_len = h * w
    stats = stats if stats is not None else SpeculationStats()
    slices_yielded = last // slice_len  # slices complete before `last` were yielded by the caller
    while True:
        while slices_yielded < (last + 1) // slice_len:
            slices_yielded += 1
            yield codes.view(batch, t, h, w), slices_yielded
        if last + 1 >= length:
            return
        k = min(draft_tokens, length - 1 - last)  # positions last+1 .. last+k scored in this pass
        proposals = propose(codes, last, k - 1, draft, prior.latent_shape)
        with torch.no_grad():
            logits = prior.verify(state, doubled(torch.cat([codes[:, last:last + 1], proposals], dim=1)), last + 1)
            probs = target(logits).softmax(-1)  # (B, k, n_codes)
            kept, next_code, accepted = accept_proposals(probs, proposals, generator)
        codes[:, last + 1:last + 1 + kept] = proposals[:, :kept]
        codes[:, last + 1 + kept] = next_code
        stats.passes += 1
        stats.positions += kept + 1
        stats.proposed += accepted.numel()
        stats.accepted += int(accepted.sum())
        new_last = last + 1 + kept
        if (new_last + 1) // slice_len > slices_yielded:
            check_finite_logits(logits, (new_last + 1) // slice_len)
        last = new_last

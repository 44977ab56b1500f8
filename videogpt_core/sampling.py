"""Token sampling for the prior: guidance, the options' logit processors, and the cached decode loop, slice by slice.

Sampling never syncs with the host per token: a code is drawn as argmax(probs / Exponential(1)), which is
an exact draw from `probs`, and stays on the device until the caller asks for it.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch

from videogpt_core.conditions import Conditions
from videogpt_core.decode_step import DecodeStep
from videogpt_core.non_finite import check_finite_logits
from videogpt_core.prior import VideoGPT
from videogpt_core.sampling_options import SamplingOptions
from videogpt_core.speculative import SpeculationStats, accept_proposals, check_draft, propose


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
        self.generator = generator
        self.drop = torch.arange(2 * batch, device=device) >= batch if options.guided else None
        self.rows = batch * (2 if self.drop is not None else 1)  # the batch the prior runs
        self.set_options(options)

    def set_options(self, options: SamplingOptions) -> None:
        """Settings for the codes still to come; guidance cannot be turned on or off (it sets the batch)."""
        if options.guided != (self.drop is not None):
            raise ValueError("guidance (cfg_scale) cannot be turned on or off in a running generation")
        self.options, self.processors = options, options.processors()

    def doubled(self, x: torch.Tensor | Conditions | None) -> torch.Tensor | Conditions | None:
        """The inputs the prior runs: codes or conditions, twice under guidance."""
        if self.drop is None or x is None:
            return x
        return x.doubled() if isinstance(x, Conditions) else torch.cat([x, x])

    def target(self, logits: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """The processed logits (B, n_codes) of the next position to sample from, given the codes drawn so
        far (B, n): guidance mixed in, then the options' processors (temperature, top-k, top-p, ...)."""
        if self.drop is not None:
            cond, uncond = logits.float().chunk(2)
            logits = uncond + self.options.cfg_scale * (cond - uncond)
        for processor in self.processors:
            logits = processor(logits, codes)
        return logits

    def pick(self, logits: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        return draw(self.target(logits, codes), self.generator)


def generate_codes(prior: VideoGPT, batch: int, conditions: Conditions | None = None, *,
                   options: SamplingOptions | None = None, generator: torch.Generator | None = None,
                   quantize: str | None = None, draft_tokens: int | None = None, draft: str = "left",
                   stats: SpeculationStats | None = None,
                   step: DecodeStep | None = None) -> Iterator[tuple[torch.Tensor, int]]:
    """Sample a latent grid in raster order. Yields (codes (B, t, h, w), slices_done) each time a latent
    time slice is complete; codes past the finished slices are 0 or already partly sampled. The conditions'
    prefix (B, n) holds known leading codes. quantize: None (float weights) or "int8" (CPU), see
    `VideoGPT.start_decoding`.

    draft_tokens: None samples one code per decode step; k >= 2 proposes k - 1 codes by copying (`draft`,
    see speculative.py), scores them in one verify pass and accepts them by speculative sampling: the same
    distribution, fewer passes when proposals are often right. `stats` (a SpeculationStats) is filled with
    what speculation did. Not with a CUDA-graph step (static decoding), which runs one code per step.
    step: how the one-token step runs (a pipeline's DecodeStep); default: eager."""
    options = options or SamplingOptions()
    options.check_for(prior)
    check_draft(draft, draft_tokens)
    t, h, w = prior.latent_shape
    length, slice_len = t * h * w, h * w
    device = prior.fc_in.weight.device
    conditions = conditions or Conditions()
    picker = CodePicker(options, batch, device, generator)
    step = step or DecodeStep.eager(prior)
    static = step.static
    state = prior.start_decoding(picker.rows, picker.doubled(conditions), drop=picker.drop, quantize=quantize,
                                 static=static)  # checks the conditions
    pick, doubled = picker.pick, picker.doubled
    codes = torch.zeros(batch, length, dtype=torch.long, device=device)
    prefix = conditions.prefix
    n_known = 0 if prefix is None else prefix.shape[1]
    if prefix is not None:
        codes[:, :n_known] = prefix

    position_ids = torch.arange(length, device=device)

    try:
        for done in range(n_known // slice_len):
            yield codes.view(batch, t, h, w), done + 1
        if draft_tokens is not None and draft_tokens > 1 and not static:
            with torch.no_grad():
                logits = prior.prefill(state, doubled(codes[:, :n_known]))
                codes[:, n_known] = pick(logits, codes[:, :n_known])
            yield from speculative_loop(prior, state, codes, n_known, draft_tokens, draft, picker.target, doubled,
                                        generator, stats)
            return
        with torch.no_grad():
            logits = prior.prefill(state, doubled(codes[:, :n_known]))
            for position in range(n_known, length):
                if position > n_known:
                    # The code drawn last step, as drawn (contiguous: a compiled step guards on strides).
                    logits = step.run(state, doubled(drawn), step.where(position, position_ids))
                drawn = pick(logits, codes[:, :position])
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
            # Position last+1+i is processed given the codes before it, proposals included.
            drawn = codes[:, :last + 1]
            probs = torch.stack([target(logits[:, i], torch.cat([drawn, proposals[:, :i]], dim=1))
                                 for i in range(k)], dim=1).softmax(-1)  # (B, k, n_codes)
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

"""Logits -> codes: guidance mixed in, the sampling options' logit processors, and a draw.

A code is drawn as argmax(probs / Exponential(1)), an exact draw from `probs` that stays on the device: the
sampler never syncs with the host per token.
"""
from __future__ import annotations

import torch

from videogpt_core.inference.sampling_options import SamplingOptions
from videogpt_core.models.conditions import Conditions


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

"""The naive sampler the KV cache is measured against: no cache, the whole teacher-forced forward of the
growing sequence for every token."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from benchmarks.common import autocast, measure
from videogpt_core.inference.code_picker import draw
from videogpt_core.models.conditions import Conditions
from videogpt_core.models.prior import Condition, VideoGPT


def naive_logits(prior: VideoGPT, condition: Condition, prefix: torch.Tensor) -> torch.Tensor:
    """Logits (B, n_codes) for position p = prefix.shape[1], from a teacher-forced forward over the
    p + 1 inputs (start token + prefix) with nothing cached: what sampling costs without a KV cache."""
    return prior.teacher_forced(prefix, condition)[:, -1]


def time_naive_points(prior: VideoGPT, batch: int, inputs: dict, n_points: int, device: torch.device,
                      amp: str, repeats: int) -> list[dict[str, Any]]:
    """Seconds per naive token step at n_points positions spread from the first to the last."""
    t, h, w = prior.latent_shape
    length = t * h * w
    generator = torch.Generator(device=device).manual_seed(1)
    codes = torch.randint(0, prior.n_codes, (batch, length), device=device, generator=generator)
    with torch.no_grad(), autocast(device, amp):
        condition = prior.condition(Conditions(**inputs), batch)  # computed once: generous to the naive sampler
    results = []
    for position in np.linspace(0, length - 1, n_points).round().astype(int).tolist():
        def run():
            with torch.no_grad(), autocast(device, amp):
                draw(naive_logits(prior, condition, codes[:, :position]).float(), generator)

        timing = measure(run, device, warmup=1, repeats=repeats, slow_s=1.0)
        results.append(dict(position=position, tokens=len(timing.runs), step_s=timing.median_s))
    return results

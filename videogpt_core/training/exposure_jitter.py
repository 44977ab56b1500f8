"""Exposure jitter for codec training: some clips made dim or flat, as real recordings often are."""
from __future__ import annotations

import math

import torch


def with_random_exposure(video: torch.Tensor, share: float, min_contrast: float = 0.08,
                         max_shift: float = 0.4) -> torch.Tensor:
    """Model videos (B, 3, T, H, W) with a share of the clips re-exposed: each chosen clip's deviations from its
    mean scaled by a contrast drawn log-uniformly from [min_contrast, 1], its mean moved to a level drawn from
    [-max_shift, max_shift], clamped and rounded to 8-bit steps as a dim or flat recording would be. Photographs
    and rendered worlds are mostly well exposed; real video often is not, and a codec that never saw a dark,
    flat clip spends its codes there as on a bright one (its error does not fall with the contrast)."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"the share of re-exposed clips is from 0 to 1; got {share}")
    shape = (video.shape[0], 1, 1, 1, 1)  # one draw per clip
    chosen = torch.rand(shape, device=video.device) < share
    contrast = torch.exp(torch.empty(shape, device=video.device).uniform_(math.log(min_contrast), 0.0))
    level = torch.empty(shape, device=video.device).uniform_(-max_shift, max_shift)
    mean = video.float().mean(dim=(1, 2, 3, 4), keepdim=True)
    toned = ((video.float() - mean) * contrast + level).clamp(-0.5, 0.5)
    toned = ((toned + 0.5) * 255.0).round() / 255.0 - 0.5
    return torch.where(chosen, toned.to(video.dtype), video)

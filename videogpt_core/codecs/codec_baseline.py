"""The baseline beside every codec figure: keep only the mean colour of each block of the codec's latent grid.

A codec with downsampling (t, h, w) sends one code per t x h x w block of pixels; the obvious codec without
learning sends that block's mean colour instead (24 bits a block, where a 1024-code codebook sends 10) and
repeats it over the block. A learned codec worth its training beats this; one that does not is only smaller.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

BITS_PER_BLOCK = 24  # one 8-bit RGB colour


def block_means(clip: np.ndarray, downsample: tuple[int, int, int]) -> np.ndarray:
    """uint8 (T, H, W, 3) -> each (t, h, w) block filled with its mean colour.

    H and W must be multiples of h and w; a last partial block in time repeats the clip's last frame, as the
    codecs pad it."""
    t, h, w = downsample
    if clip.shape[1] % h or clip.shape[2] % w:
        raise ValueError(f"frames of {clip.shape[2]}x{clip.shape[1]} pixels do not divide into {h}x{w} blocks")
    pad = (-len(clip)) % t
    padded = np.concatenate([clip, np.repeat(clip[-1:], pad, axis=0)])
    video = torch.from_numpy(padded).double().permute(3, 0, 1, 2)[None]  # (1, 3, T, H, W)
    means = F.interpolate(F.avg_pool3d(video, (t, h, w)), scale_factor=(t, h, w), mode="nearest")
    return means[0].permute(1, 2, 3, 0)[: len(clip)].round().clamp(0, 255).byte().numpy()


def block_mean_bits(clip: np.ndarray, downsample: tuple[int, int, int]) -> int:
    """Bits the baseline sends for `clip`: BITS_PER_BLOCK per block of the grid."""
    t, h, w = downsample
    return -(-len(clip) // t) * (clip.shape[1] // h) * (clip.shape[2] // w) * BITS_PER_BLOCK

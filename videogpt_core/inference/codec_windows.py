"""A clip of any length through a VQ-VAE, window by window of the length it was trained on.

The VQ-VAE's encoder and decoder see across the whole window (3D convolutions, axial attention), and a model
decodes grids longer than its training window badly (pusher, 32-frame test clips: 32.9 dB window by window,
26.8 dB for the whole clip at once), so long clips are cut into training-length windows. The frames are
free in size: the networks are convolutional with attention along each axis and no position encodings, so
any height and width that the spatial downsampling divides works.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from videogpt_core.data.transforms import from_model_video
from videogpt_core.models.vqvae import VQVAE


def pad_to_window(video: torch.Tensor, length: int) -> torch.Tensor:
    """`video` (n, 3, T, H, W) cut to its first `length` frames, its last frame repeated if it is shorter."""
    window = video[:, :, :length]
    if window.shape[2] < length:
        window = torch.cat([window, window[:, :, -1:].expand(-1, -1, length - window.shape[2], -1, -1)], dim=2)
    return window


def reconstruct_in_windows(vqvae: VQVAE, video: torch.Tensor,
                           decode: Callable[[torch.Tensor], np.ndarray] | None = None
                           ) -> tuple[np.ndarray, torch.Tensor]:
    """A video (n, 3, T, H, W) in [-0.5, 0.5] through `vqvae` -> uint8 frames (n, T, H, W, 3) and codes
    (n, T / frames_per_latent, h, w); T must be a multiple of the temporal downsampling.

    Windows have the VQ-VAE's training length; a short tail is taken from the window ending at the clip's end;
    a clip shorter than a window is completed by repeating its last frame. `decode` turns a window's codes
    into uint8 frames (default: float32 decoding on the video's device).
    """
    length, fpl = vqvae.config.sequence_length, vqvae.config.downsample[0]
    total = video.shape[2]
    if total % fpl:
        raise ValueError(f"the video has {total} frames; reconstruct needs a multiple of {fpl}")
    if decode is None:
        def decode(codes: torch.Tensor) -> np.ndarray:
            return from_model_video(vqvae.decode(codes).float())
    frames, codes = [], []
    with torch.no_grad():
        for start in range(0, total, length):
            end = min(start + length, total)
            window_start = max(0, end - length)
            window_codes = vqvae.encode(pad_to_window(video[:, :, window_start:end], length))
            first = start - window_start  # frames of this window that earlier windows gave already
            frames.append(decode(window_codes)[:, first: first + end - start])
            codes.append(window_codes[:, first // fpl: (end - window_start) // fpl])
    return np.concatenate(frames, axis=1), torch.cat(codes, dim=1).cpu()

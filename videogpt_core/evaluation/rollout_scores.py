"""Measures shared by the world-model rollout scores: the error of located positions against the
simulator's, and the PSNR of whole videos."""
from __future__ import annotations

import numpy as np
import torch

from videogpt_core.evaluation.metrics import psnr_from_mse


def mean_position_error(found: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(mean distance over pairs where both exist, fraction of true things that were found)."""
    """(mean distance over pairs where both exist, fraction of true things that were found)."""
    present = ~np.isnan(truth).any(axis=-1)
    both = present & ~np.isnan(found).any(axis=-1)
    if not present.any():
        return float("nan"), float("nan")
    error = float(np.linalg.norm(found[both] - truth[both], axis=-1).mean()) if both.any() else float("nan")
    return error, float(both.sum() / present.sum())


def video_psnr(sampled_frames: np.ndarray, true_frames: np.ndarray) -> float:
    """Mean over videos of the PSNR (dB) of each whole video; inf when identical. (N, T, H, W, 3) uint8."""
    difference = sampled_frames.astype(np.float64) - true_frames.astype(np.float64)
    mse = np.mean(difference**2, axis=tuple(range(1, difference.ndim)))  # (N,)
    return float(psnr_from_mse(torch.from_numpy(mse), data_range=255.0).mean())

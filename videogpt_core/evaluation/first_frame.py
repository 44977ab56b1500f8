"""World-model score of the given start: is frame 1 of a rollout the first frame it was given?

A rollout that starts from a true first frame should show that frame first. The best a model can do there
is what its codec does with the frame, so frame 1 of the rollouts is scored (PSNR against the true first
frame) beside frame 1 of the codec's reconstruction of the same true clips, made as the pipeline makes
it (`pipeline.reconstruct`).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from videogpt_core.data.transforms import resize_center_crop, to_model_video
from videogpt_core.evaluation.clips import resize_clips
from videogpt_core.evaluation.rollout_scores import video_psnr


def codec_first_frames(pipeline, truth: np.ndarray, batch_size: int) -> np.ndarray:
    """Frame 1 of each true clip (uint8 (N, T, H, W, 3)) after the pipeline's VQ-VAE, at the stored size:
    uint8 (N, 1, H, W, 3)."""
    resolution, fpl = pipeline.resolution, pipeline.config.frames_per_latent
    length = truth.shape[1] - truth.shape[1] % fpl  # reconstruct takes whole latent slices
    if length < 1:
        raise ValueError(f"clips of {truth.shape[1]} frames are shorter than one latent slice ({fpl} frames)")
    firsts = []
    for start in range(0, len(truth), batch_size):
        clips = truth[start: start + batch_size, :length]
        video = torch.stack([to_model_video(resize_center_crop(clip, resolution)) for clip in clips])
        frames, _codes = pipeline.reconstruct(video)
        firsts.append(resize_clips(frames[:, :1], truth.shape[2]))
    return np.concatenate(firsts)


def first_frame_scores(pipeline, truth: np.ndarray, rollouts: np.ndarray, batch_size: int) -> dict[str, Any]:
    """PSNR (dB, mean over episodes) of frame 1 of `rollouts` and of the codec's reconstruction against the
    true first frame, and the gap (codec - rollout; <= 1 dB keeps the given frame as well as the codec can).
    truth and rollouts: uint8 (N, T, H, W, 3) at the same size, rollouts started from truth[:, 0]."""
    truth, rollouts = np.asarray(truth), np.asarray(rollouts)
    if rollouts.ndim != 5 or rollouts.shape[0] != truth.shape[0] or rollouts.shape[2:] != truth.shape[2:]:
        raise ValueError(f"rollouts must be (N, T, H, W, 3) like the true clips; got {rollouts.shape} and "
                         f"{truth.shape}")
    given = truth[:, :1]
    rollout_psnr = video_psnr(rollouts[:, :1], given)
    codec_psnr = video_psnr(codec_first_frames(pipeline, truth, batch_size), given)
    return {"rollout_psnr": rollout_psnr, "codec_psnr": codec_psnr, "gap_db": codec_psnr - rollout_psnr}

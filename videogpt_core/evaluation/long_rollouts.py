"""World-model score past the prior's window: rollouts as long as the stored test episodes (the pipeline
slides its window along), scored on the frames after the first window, and on the later half of the rollout,
against the first frame held there.

A model that loses the scene once the window slides falls to (or below) the held first frame on those
frames; one that keeps the world going stays above it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from videogpt_core.data.transforms import from_model_video
from videogpt_core.evaluation.clips import WORLD_SPLIT, batches, resize_clips
from videogpt_core.evaluation.rollout_scores import video_psnr


def long_rollout(pipeline, true_frames: np.ndarray, actions: np.ndarray, options, seed: int) -> np.ndarray:
    """One rollout of a whole episode (uint8 (T, H, W, 3), actions (T, A)) from its first frame(s) through
    pipeline.generate (which slides the window past the prior's length), at the stored size: (T, H, W, 3)."""
    config = pipeline.prior.config
    given = config.n_cond_frames or config.frames_per_latent  # a prefix takes a whole latent slice
    result = pipeline.generate(1, frames=true_frames[:given], actions=actions, n_frames=len(true_frames),
                               options=options, seed=seed)
    return resize_clips(result.frames, true_frames.shape[1])[0]


def long_rollout_scores(pipeline, data: Path, n_episodes: int, n_frames: int, options, seed: int,
                        frame_stride: int = 1, progress: bool = False) -> dict[str, Any]:
    """Roll out the first n_frames of up to n_episodes test episodes of a world file from their true first
    frame(s) and true actions, one episode at a time (episode i with seed + i); PSNR of the frames after the
    prior's window against the true ones, beside the first frame held on those frames."""
    from videogpt_core.data.hdf5 import HDF5VideoDataset

    config = pipeline.prior.config
    window = config.sequence_length
    if isinstance(n_frames, bool) or int(n_frames) != n_frames or n_frames <= window:
        raise ValueError(f"long rollouts need a whole number of frames above the prior's window of {window} "
                         f"frames (the frames after it are scored), got {n_frames!r}")
    if not config.action_dim:
        raise ValueError("long rollouts follow the test episodes' actions; this prior is not action-conditional")
    try:
        episodes = HDF5VideoDataset(data, int(n_frames), None, train=False, split=WORLD_SPLIT,
                                    frame_stride=frame_stride)
    except ValueError as error:  # say which option asked for more frames than the episodes have
        raise ValueError(f"--world-frames {n_frames}: {error}; give at most the test episodes' length") from None
    if episodes.action_dim != config.action_dim:
        raise ValueError(f"{data} has {episodes.action_dim}-number actions but the prior takes {config.action_dim}")
    n = min(n_episodes, len(episodes))
    truth, sampled = [], []
    for index, item in enumerate(batches(episodes, n, 1, f"{n_frames}-frame rollouts", progress)):
        true_frames = from_model_video(item["video"])[0]  # the stored uint8 frames, exactly
        sampled.append(long_rollout(pipeline, true_frames, item["actions"][0].numpy(), options, seed + index))
        truth.append(true_frames)
    truth_all, sampled_all = np.stack(truth), np.stack(sampled)
    still = np.repeat(truth_all[:, :1], n_frames, axis=1)
    psnr = video_psnr(sampled_all[:, window:], truth_all[:, window:])
    held = video_psnr(still[:, window:], truth_all[:, window:])
    # The later half alone (frames 17-32 of 32), whatever the window: where drift shows most.
    half = int(n_frames) // 2
    later = video_psnr(sampled_all[:, half:], truth_all[:, half:])
    later_held = video_psnr(still[:, half:], truth_all[:, half:])
    return {
        "episodes": n,
        "frames": int(n_frames),
        "window_frames": window,
        "scored_frames": [window + 1, int(n_frames)],  # 1-based, inclusive
        "psnr": psnr,
        "copy_first_frame_psnr": held,
        "gain_over_copy_db": psnr - held,
        "whole_rollout_psnr": video_psnr(sampled_all, truth_all),
        "later_half_frames": [half + 1, int(n_frames)],
        "later_half_psnr": later,
        "later_half_copy_first_frame_psnr": later_held,
        "later_half_gain_over_copy_db": later - later_held,
    }

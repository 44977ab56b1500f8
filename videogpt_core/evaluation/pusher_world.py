"""World-model scores on the pusher world: sample a rollout from each test episode's true first frame(s) and
true actions, find the gripper and the objects in it by colour, and compare with the simulator's rollout;
and how well frame 1 keeps the given first frame (first_frame.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from videogpt_core.data.transforms import from_model_video
from videogpt_core.data.worlds.pusher import GRIPPER_BODY_COLOUR
from videogpt_core.evaluation.clips import WORLD_SPLIT, batches, first_frames_condition, resize_clips, sample_clips
from videogpt_core.evaluation.first_frame import first_frame_scores
from videogpt_core.evaluation.rollout_scores import mean_position_error, video_psnr
from videogpt_core.inference.pipeline import VideoGPTPipeline
from videogpt_core.inference.sampling_options import SamplingOptions

COLOUR_TOLERANCE = 60.0  # RGB distance: well inside the gap between the palette and the table/gripper
GRIPPER_TOLERANCE = 45.0
MIN_PIXELS = 3  # fewer matching pixels than this count as "not found"


def _pixel_centres(size: int) -> np.ndarray:
    return np.arange(size, dtype=np.float64) + 0.5


def locate_by_colour(frames: np.ndarray, colours: np.ndarray, tolerance: float = COLOUR_TOLERANCE) -> np.ndarray:
    """Centroid (x, y), in pixels with pixel j centred at j + 0.5, of the pixels within `tolerance` (RGB
    distance) of each colour. frames (..., H, W, 3) uint8, colours (n, 3) -> (..., n, 2) float32, NaN where
    fewer than MIN_PIXELS match."""
    frames = np.asarray(frames)
    colours = np.asarray(colours, dtype=np.float32).reshape(-1, 3)
    if frames.ndim < 3 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (..., H, W, 3) RGB, got shape {frames.shape}")
    height, width = frames.shape[-3:-1]
    pixels = frames.astype(np.float32)[..., None, :]  # (..., H, W, 1, 3)
    distance_sq = np.sum((pixels - colours) ** 2, axis=-1)  # (..., H, W, n)
    mask = (distance_sq <= tolerance**2).astype(np.float64)
    counts = mask.sum(axis=(-3, -2))  # (..., n)
    xs = np.einsum("...hwn,w->...n", mask, _pixel_centres(width))
    ys = np.einsum("...hwn,h->...n", mask, _pixel_centres(height))
    with np.errstate(invalid="ignore", divide="ignore"):
        centres = np.stack([xs / counts, ys / counts], axis=-1)
    centres[counts < MIN_PIXELS] = np.nan
    return centres.astype(np.float32)


def locate_gripper(frames: np.ndarray) -> np.ndarray:
    """The pusher gripper's centre (its dark body): frames (..., H, W, 3) uint8 -> (..., 2), NaN if absent."""
    return locate_by_colour(frames, np.array([GRIPPER_BODY_COLOUR]), GRIPPER_TOLERANCE)[..., 0, :]



def pusher_rollout_scores(sampled_frames: np.ndarray, true_frames: np.ndarray, true_positions: np.ndarray,
                          colours: np.ndarray) -> dict[str, float]:
    """Score sampled pusher videos against the simulator's rollout from the same first frame and actions.

    sampled_frames, true_frames: (N, T, 64, 64, 3) uint8; true_positions: (N, T, 1 + k, 2) gripper first,
    NaN for absent objects (the HDF5 padding); colours: (N, k, 3) uint8 object colours.
    Returns gripper_error_px / object_error_px (mean Euclidean error over all frames where the thing is
    found), gripper_found / object_found (fraction of true things located in the samples; a sample that
    loses an object scores low here rather than in the error) and psnr (dB, mean over videos).
    """
    sampled_frames, true_frames = np.asarray(sampled_frames), np.asarray(true_frames)
    true_positions = np.asarray(true_positions, dtype=np.float64)
    colours = np.asarray(colours)
    if sampled_frames.shape != true_frames.shape or sampled_frames.ndim != 5:
        raise ValueError(
            f"sampled and true frames must both be (N, T, H, W, 3); got {sampled_frames.shape} and {true_frames.shape}"
        )
    n_videos, n_frames = true_frames.shape[:2]
    n_objects = true_positions.shape[2] - 1
    if true_positions.shape[:2] != (n_videos, n_frames) or colours.shape[:1] != (n_videos,) \
            or colours.shape[1] < n_objects:
        raise ValueError(
            f"true_positions must be (N={n_videos}, T={n_frames}, 1 + k, 2) and colours (N, >= k, 3); "
            f"got {true_positions.shape} and {colours.shape}"
        )
    gripper_error, gripper_found = mean_position_error(locate_gripper(sampled_frames), true_positions[:, :, 0])
    found_objects = np.full((n_videos, n_frames, n_objects, 2), np.nan)
    for video in range(n_videos):
        found_objects[video] = locate_by_colour(sampled_frames[video], colours[video, :n_objects])
    object_error, object_found = mean_position_error(found_objects, true_positions[:, :, 1:])
    return {
        "gripper_error_px": gripper_error,
        "object_error_px": object_error,
        "gripper_found": gripper_found,
        "object_found": object_found,
        "psnr": video_psnr(sampled_frames, true_frames),
    }


def pusher_world_scores(pipeline: VideoGPTPipeline, data: Path, n_episodes: int, batch_size: int,
                        options: SamplingOptions, seed: int, frame_stride: int = 1,
                        progress: bool = False) -> dict[str, Any]:
    """Sample a rollout from each test episode's true first frame(s) and true actions; compare it with the
    simulator's rollout (the stored test frames) by gripper / object position error and PSNR. Samples are
    resized to the stored frame size, so errors are in pixels of the world's 64x64 frames."""
    import h5py

    from videogpt_core.data.hdf5 import HDF5VideoDataset

    config, device = pipeline.prior.config, pipeline.device
    if not config.action_dim or config.n_classes:
        raise ValueError("pusher rollouts need an action-conditional prior without classes; this one has "
                         f"action_dim={config.action_dim}, n_classes={config.n_classes}")
    episodes = HDF5VideoDataset(data, config.sequence_length, None, train=False, split=WORLD_SPLIT,
                                frame_stride=frame_stride)
    if episodes.action_dim != config.action_dim or not episodes.has_positions:
        raise ValueError(f"{data} is not a pusher world file with {config.action_dim}-number actions and positions")
    with h5py.File(data, "r") as file:
        colours_key, seeds_key = f"{WORLD_SPLIT}_object_colours", f"{WORLD_SPLIT}_seeds"
        if colours_key not in file:
            raise ValueError(f"{data} has no '{colours_key}'; rebuild it with `videogpt make-dataset pusher`")
        colours = file[colours_key][()][episodes.video_ids]
        seeds = file[seeds_key][()][episodes.video_ids] if seeds_key in file else None
    n = min(n_episodes, len(episodes))
    generator = torch.Generator(device=device).manual_seed(seed)
    truth, sampled, positions, conditioning = [], [], [], ""
    for batch in batches(episodes, n, batch_size, "pusher rollouts", progress):
        true_frames = from_model_video(batch["video"])  # the stored uint8 frames, exactly
        condition, conditioning = first_frames_condition(config, true_frames, device, "the true rollout")
        clips = sample_clips(pipeline, len(true_frames), options, generator,
                             actions=batch["actions"].to(device), **condition)
        sampled.append(resize_clips(clips, true_frames.shape[2]))
        truth.append(true_frames)
        positions.append(batch["positions"].numpy())
    truth_all, sampled_all, positions_all = np.concatenate(truth), np.concatenate(sampled), np.concatenate(positions)
    scores = pusher_rollout_scores(sampled_all, truth_all, positions_all, colours[:n])
    # What a model that never moves anything would score: a floor for the numbers above to beat.
    still = np.repeat(truth_all[:, :1], truth_all.shape[1], axis=1)
    return {
        "world": "pusher",
        "episodes": n,
        "frames": int(truth_all.shape[1]),
        "conditioning": f"{conditioning} + true actions",
        **scores,
        "copy_first_frame_baseline": pusher_rollout_scores(still, truth_all, positions_all, colours[:n]),
        "first_frame": first_frame_scores(pipeline, truth_all, sampled_all, batch_size),
        "episode_seeds": None if seeds is None else [int(s) for s in seeds[:n]],
    }

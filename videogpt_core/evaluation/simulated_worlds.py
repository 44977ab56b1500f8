"""`videogpt eval --what world` on the simulated worlds (vizdoom, fetchpush): roll the model out from each test
episode's true first frame(s) with its true actions and compare with the simulator's rollout (the stored test
frames, which the simulator replays byte for byte from the same seed and actions).

Beside the model's scores stand two baselines: the first frame repeated (a model that never moves), and the
same model driven by another test episode's actions from the same first frame; action_sensitivity_psnr is
the PSNR with the true actions minus the PSNR with the other actions (how much the actions steer the model).
vizdoom adds turn agreement (vizdoom_world.py), fetchpush the gripper / block position error in pixels
(fetchpush_world.py), each also measured on the true frames (what a perfect model would score).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from videogpt_core.data.transforms import from_model_video
from videogpt_core.evaluation.clips import WORLD_SPLIT, batches, first_frames_condition, resize_clips, sample_clips
from videogpt_core.evaluation.fetchpush_world import fetchpush_rollout_scores
from videogpt_core.evaluation.rollout_scores import video_psnr
from videogpt_core.evaluation.vizdoom_world import action_names_from_attrs, turn_agreement
from videogpt_core.metrics import ssim

SIMULATED_WORLDS = ("vizdoom", "fetchpush")


def _video_scores(sampled: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    def channels_first(clips):  # (N, T, H, W, 3) uint8 -> (N, 3, T, H, W) float
        return torch.from_numpy(np.ascontiguousarray(clips)).permute(0, 4, 1, 2, 3).float()

    return {"psnr": video_psnr(sampled, truth), "ssim": float(ssim(channels_first(sampled), channels_first(truth),
                                                                    value_range=(0.0, 255.0)))}


def _world_specific(world: str, frames: np.ndarray, true_actions: np.ndarray, true_positions: np.ndarray | None,
                    action_names: list[str]) -> dict[str, Any]:
    """vizdoom: do the frames turn as the true actions say; fetchpush: where are gripper and block in them."""
    if world == "vizdoom":
        return turn_agreement(frames, true_actions, action_names)
    located = fetchpush_rollout_scores(frames, frames, true_positions)
    located.pop("psnr")  # of the frames with themselves; _video_scores has the real one
    return located


def _scores(world: str, frames: np.ndarray, truth: np.ndarray, true_actions: np.ndarray,
            true_positions: np.ndarray | None, action_names: list[str]) -> dict[str, Any]:
    return {**_video_scores(frames, truth), **_world_specific(world, frames, true_actions, true_positions,
                                                              action_names)}


def _rollouts(pipeline, truth: np.ndarray, action_sets: dict[str, torch.Tensor], batch_size: int, options,
              seed: int) -> tuple[dict[str, np.ndarray], str]:
    """One sampled rollout per true episode and action set, from the episode's true first frame(s), resized to
    the stored frame size; and how they were conditioned. The action sets share one generator, batch by batch."""
    config, device = pipeline.prior.config, pipeline.device
    generator = torch.Generator(device=device).manual_seed(seed)
    conditioning = ""
    rollouts: dict[str, list[np.ndarray]] = {name: [] for name in action_sets}
    for start in range(0, len(truth), batch_size):
        rows = slice(start, min(start + batch_size, len(truth)))
        condition, conditioning = first_frames_condition(config, truth[rows], device, "the true rollout")
        for name, actions in action_sets.items():
            clips = sample_clips(pipeline, len(truth[rows]), options, generator,
                                 actions=actions[rows].to(device), **condition)
            rollouts[name].append(resize_clips(clips, truth.shape[2]))
    return {name: np.concatenate(parts) for name, parts in rollouts.items()}, conditioning


@torch.no_grad()
def simulated_world_scores(pipeline, data: Path, world: str, n_episodes: int, batch_size: int, options, seed: int,
                           frame_stride: int = 1, progress: bool = False) -> dict[str, Any]:
    """The world scores of an action-conditional pipeline on a vizdoom or fetchpush world file's test split."""
    import h5py

    from videogpt_core.data.hdf5 import HDF5VideoDataset

    if world not in SIMULATED_WORLDS:
        raise ValueError(f"simulated world scores are for {', '.join(SIMULATED_WORLDS)}, not {world!r}")
    config = pipeline.prior.config
    if not config.action_dim or config.n_classes:
        raise ValueError(f"{world} rollouts need an action-conditional prior without classes; this one has "
                         f"action_dim={config.action_dim}, n_classes={config.n_classes}")
    episodes = HDF5VideoDataset(data, config.sequence_length, None, train=False, split=WORLD_SPLIT,
                                frame_stride=frame_stride)
    if episodes.action_dim != config.action_dim:
        raise ValueError(f"{data} has {episodes.action_dim}-number actions but the prior takes {config.action_dim}")
    if world == "fetchpush" and not episodes.has_positions:
        raise ValueError(f"{data} has no '{WORLD_SPLIT}_positions'; rebuild it with `videogpt make-dataset fetchpush`")
    with h5py.File(data, "r") as file:
        action_names = action_names_from_attrs(file.attrs)
        seeds_key = f"{WORLD_SPLIT}_seeds"
        seeds = file[seeds_key][()][episodes.video_ids] if seeds_key in file else None
    n = min(n_episodes, len(episodes))
    if n < 2:
        raise ValueError(f"{world} world scores need at least 2 test episodes (one lends the other its actions); "
                         f"got {n}")
    truth, actions, positions = [], [], []
    for batch in batches(episodes, n, batch_size, f"{world} test episodes", progress):
        truth.append(from_model_video(batch["video"]))  # the stored uint8 frames, exactly
        actions.append(batch["actions"])
        if world == "fetchpush":
            positions.append(batch["positions"].numpy())
    truth_all, actions_all = np.concatenate(truth), torch.cat(actions)
    positions_all = np.concatenate(positions) if positions else None
    other_actions = torch.roll(actions_all, shifts=-1, dims=0)  # episode i driven by episode i+1's actions

    action_sets = {"true_actions": actions_all, "other_actions": other_actions}
    rollouts, conditioning = _rollouts(pipeline, truth_all, action_sets, batch_size, options, seed)
    sampled, driven_by_other = rollouts["true_actions"], rollouts["other_actions"]
    still = np.repeat(truth_all[:, :1], truth_all.shape[1], axis=1)
    true_actions_np = actions_all.numpy()

    model = _scores(world, sampled, truth_all, true_actions_np, positions_all, action_names)
    other = _scores(world, driven_by_other, truth_all, true_actions_np, positions_all, action_names)
    return {
        "world": world,
        "episodes": n,
        "frames": int(truth_all.shape[1]),
        "conditioning": f"{conditioning} + true actions",
        "action_names": action_names,
        **model,
        "action_sensitivity_psnr": model["psnr"] - other["psnr"],
        "other_episode_actions_baseline": other,
        "copy_first_frame_baseline": _scores(world, still, truth_all, true_actions_np, positions_all, action_names),
        "true_frames": _world_specific(world, truth_all, true_actions_np, positions_all, action_names),
        "episode_seeds": None if seeds is None else [int(s) for s in seeds[:n]],
    }

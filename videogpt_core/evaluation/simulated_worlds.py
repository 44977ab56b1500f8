"""`videogpt eval --what world` on the simulated worlds (vizdoom, fetchpush): roll the model out from each test
episode's true first frame(s) with its true actions and compare with the simulator's rollout (the stored test
frames, which the simulator replays byte for byte from the same seed and actions).

Beside the model's scores stand two baselines: the first frame repeated (a model that never moves), and the
same model driven by another test episode's actions from the same first frame; action_sensitivity_psnr is
the PSNR with the true actions minus the PSNR with the other actions (how much the actions steer the model).
vizdoom adds turn agreement (vizdoom_world.py), fetchpush the gripper / block position error in pixels
(fetchpush_world.py), each also measured on the true frames (what a perfect model would score). Both report
how well frame 1 keeps the given first frame (first_frame.py); vizdoom also rolls out held turn buttons
(held_turns.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from videogpt_core.data.transforms import from_model_video
from videogpt_core.evaluation.clips import WORLD_SPLIT, batches, sample_rollouts
from videogpt_core.evaluation.fetchpush_world import fetchpush_rollout_scores
from videogpt_core.evaluation.first_frame import first_frame_scores
from videogpt_core.evaluation.held_turns import held_turn_scores
from videogpt_core.evaluation.metrics import ssim
from videogpt_core.evaluation.rollout_scores import video_psnr
from videogpt_core.evaluation.vizdoom_world import action_names_from_attrs, turn_agreement

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


def _test_episodes(data: Path, world: str, config, n_episodes: int, n_frames: int, batch_size: int,
                   frame_stride: int, progress: bool) -> dict[str, Any]:
    """The first n_frames of the first n_episodes test episodes of a world file (frames, actions, positions)
    and its facts (action names, seeds, the simulator options that replay them)."""
    import h5py

    from videogpt_core.data.hdf5 import HDF5VideoDataset

    try:
        episodes = HDF5VideoDataset(data, n_frames, None, train=False, split=WORLD_SPLIT, frame_stride=frame_stride)
    except ValueError as error:  # say which option asked for more frames than the episodes have
        raise ValueError(f"rollouts of {n_frames} frames: {error}; give at most the test episodes' length") from None
    if episodes.action_dim != config.action_dim:
        raise ValueError(f"{data} has {episodes.action_dim}-number actions but the prior takes {config.action_dim}")
    if world == "fetchpush" and not episodes.has_positions:
        raise ValueError(f"{data} has no '{WORLD_SPLIT}_positions'; rebuild it with `videogpt make-dataset fetchpush`")
    with h5py.File(data, "r") as file:
        action_names = action_names_from_attrs(file.attrs)
        seeds_key = f"{WORLD_SPLIT}_seeds"
        seeds = file[seeds_key][()][episodes.video_ids] if seeds_key in file else None
        replay = {key: file.attrs[key] for key in ("scenario", "frame_skip") if key in file.attrs}
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
    return {"truth": np.concatenate(truth), "actions": torch.cat(actions),
            "positions": np.concatenate(positions) if positions else None, "action_names": action_names,
            "seeds": None if seeds is None else seeds[:n],
            "replay_options": {"scenario": str(replay["scenario"]), "frame_skip": int(replay["frame_skip"])}
            if len(replay) == 2 else None}


@torch.no_grad()
def simulated_world_scores(pipeline, data: Path, world: str, n_episodes: int, batch_size: int, options, seed: int,
                           frame_stride: int = 1, progress: bool = False,
                           rollout_frames: int | None = None) -> dict[str, Any]:
    """The world scores of an action-conditional pipeline on a vizdoom or fetchpush world file's test split,
    on rollouts of `rollout_frames` frames (default: the prior's window; more slide it, see clips.sample_clips)."""
    if world not in SIMULATED_WORLDS:
        raise ValueError(f"simulated world scores are for {', '.join(SIMULATED_WORLDS)}, not {world!r}")
    config = pipeline.prior.config
    if not config.action_dim or config.n_classes:
        raise ValueError(f"{world} rollouts need an action-conditional prior without classes; this one has "
                         f"action_dim={config.action_dim}, n_classes={config.n_classes}")
    n_frames = config.sequence_length if rollout_frames is None else rollout_frames
    test = _test_episodes(data, world, config, n_episodes, n_frames, batch_size, frame_stride, progress)
    truth_all, actions_all, positions_all = test["truth"], test["actions"], test["positions"]
    action_names, seeds = test["action_names"], test["seeds"]
    other_actions = torch.roll(actions_all, shifts=-1, dims=0)  # episode i driven by episode i+1's actions

    action_sets = {"true_actions": actions_all, "other_actions": other_actions}
    rollouts, conditioning = sample_rollouts(pipeline, truth_all, action_sets, batch_size, options, seed)
    sampled, driven_by_other = rollouts["true_actions"], rollouts["other_actions"]
    still = np.repeat(truth_all[:, :1], truth_all.shape[1], axis=1)
    true_actions_np = actions_all.numpy()

    model = _scores(world, sampled, truth_all, true_actions_np, positions_all, action_names)
    other = _scores(world, driven_by_other, truth_all, true_actions_np, positions_all, action_names)
    result = {
        "world": world,
        "episodes": len(truth_all),
        "frames": int(truth_all.shape[1]),
        "conditioning": f"{conditioning} + true actions",
        "action_names": action_names,
        **model,
        "action_sensitivity_psnr": model["psnr"] - other["psnr"],
        "other_episode_actions_baseline": other,
        "copy_first_frame_baseline": _scores(world, still, truth_all, true_actions_np, positions_all, action_names),
        "true_frames": _world_specific(world, truth_all, true_actions_np, positions_all, action_names),
        "first_frame": first_frame_scores(pipeline, truth_all, sampled, batch_size),
        "episode_seeds": None if seeds is None else [int(s) for s in seeds],
    }
    if world == "vizdoom":
        result["held_turns"] = held_turn_scores(pipeline, truth_all, true_actions_np, action_names, seeds,
                                                test["replay_options"], batch_size, options, seed, frame_stride)
    return result

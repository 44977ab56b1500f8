"""`videogpt eval --what world`: which world-model score a built-in world file gets, and whether a prior
fits it; pusher_world.py, digits_world.py and simulated_worlds.py (vizdoom, fetchpush) compute them, and
long_rollouts.py the rollouts past the prior's window (--world-frames) of the action-driven worlds."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from videogpt_core.evaluation.digits_world import digits_world_scores
from videogpt_core.evaluation.long_rollouts import long_rollout_scores
from videogpt_core.evaluation.pusher_world import pusher_world_scores
from videogpt_core.evaluation.simulated_worlds import SIMULATED_WORLDS, simulated_world_scores
from videogpt_core.inference.pipeline import VideoGPTPipeline
from videogpt_core.inference.sampling_options import SamplingOptions

WORLDS = ("pusher", "digits", *SIMULATED_WORLDS)
ACTION_WORLDS = ("pusher", *SIMULATED_WORLDS)  # rolled out from test episodes' first frames and actions


def world_unfit_reason(world: str | None, config) -> str | None:
    """Why a prior with this config cannot be scored on this world, or None when it can."""
    if world not in WORLDS:
        return f"the data is not a built-in world file ({', '.join(WORLDS)})"
    if world != "digits" and (not config.action_dim or config.n_classes):
        return f"{world} rollouts need an action-conditional prior without classes"
    return None


def check_world_frames(world_frames: int | None, world: str | None, config) -> None:
    """Refuse a --world-frames that the world or the prior cannot use, before anything slow runs."""
    if world_frames is None:
        return
    if world not in ACTION_WORLDS:
        raise ValueError(f"--world-frames rolls out test episodes of {', '.join(ACTION_WORLDS)}; {world!r} has none")
    window = config.sequence_length
    if isinstance(world_frames, bool) or int(world_frames) != world_frames or world_frames <= window:
        raise ValueError(f"--world-frames must be a whole number above the prior's window of {window} frames "
                         f"(the frames after it are scored), got {world_frames!r}")


def check_rollout_frames(rollout_frames: int | None, world: str | None, config, per_frame: bool) -> None:
    """Refuse a --world-rollout-frames that the world or the models cannot use, before anything slow runs."""
    if rollout_frames is None:
        return
    if world not in SIMULATED_WORLDS:
        raise ValueError(f"--world-rollout-frames sets the rollouts of {', '.join(SIMULATED_WORLDS)}; "
                         f"{world!r} rolls out the prior's window")
    window = config.sequence_length
    if isinstance(rollout_frames, bool) or int(rollout_frames) != rollout_frames or rollout_frames < 2:
        raise ValueError(f"--world-rollout-frames must be a whole number of at least 2, got {rollout_frames!r}")
    if rollout_frames > window and not (per_frame and not config.n_cond_frames):
        raise ValueError(f"--world-rollout-frames above the prior's window ({window} frames) needs a per-frame "
                         "codec and no first-frame cross-attention; use --world-frames for this model's long rollouts")


def world_scores(pipeline: VideoGPTPipeline, data: Path, world: str, *, samples: int, batch_size: int,
                 options: SamplingOptions, seed: int, frame_stride: int = 1, max_clips: int | None = None,
                 digit_classifier: str | os.PathLike | None = None,
                 save_digit_classifier: str | os.PathLike | None = None, digit_classifier_steps: int = 400,
                 world_frames: int | None = None, rollout_frames: int | None = None,
                 progress: bool = False) -> dict[str, Any]:
    """The world's scores: `samples` test episodes rolled out (pusher, vizdoom, fetchpush) or samples per
    class (digits, whose classifier is loaded from `digit_classifier` or trained on the train clips).
    world_frames: also roll the episodes out to that many frames, past the prior's window ("long_rollout").
    rollout_frames (vizdoom, fetchpush): the frames every other score rolls out (default: the window)."""
    check_world_frames(world_frames, world, pipeline.prior.config)
    check_rollout_frames(rollout_frames, world, pipeline.prior.config, pipeline.vqvae.config.per_frame)
    if world == "pusher":
        scores = pusher_world_scores(pipeline, data, samples, batch_size, options, seed, frame_stride, progress)
    elif world in SIMULATED_WORLDS:
        scores = simulated_world_scores(pipeline, data, world, samples, batch_size, options, seed, frame_stride,
                                        progress, rollout_frames)
    elif world == "digits":
        return digits_world_scores(pipeline, data, samples, batch_size, options, seed, frame_stride, max_clips,
                                   digit_classifier, save_digit_classifier, digit_classifier_steps,
                                   progress=progress)
    else:
        raise ValueError(f"no world scores for {world!r}; built-in worlds: {', '.join(WORLDS)}")
    if world_frames is not None:
        scores["long_rollout"] = long_rollout_scores(pipeline, data, samples, world_frames, options, seed,
                                                     frame_stride, progress)
    return scores

"""World-model score of the vizdoom turn buttons: does holding one turn the view the way, and about as far
as, the simulator turns it?

From each evaluated test episode's first frame the model is rolled out twice: TURN_LEFT held on every step,
then TURN_RIGHT (other buttons released). Each rollout's mean horizontal shift per step (phase correlation,
vizdoom_world.horizontal_shifts) is set against the simulator's for the same button: measured by replaying
the held button from each episode's seed when the simulator is installed, else read off the turning steps
of the true test frames.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from videogpt_core.evaluation.clips import sample_rollouts
from videogpt_core.evaluation.vizdoom_world import horizontal_shifts, turn_signs

TURN_BUTTONS = ("TURN_LEFT", "TURN_RIGHT")
MIN_SHARE_OF_SIMULATOR = 0.5  # a rollout follows a button when it shifts at least this share as far


def held_turn_actions(n_episodes: int, n_frames: int, action_names: list[str], button: str,
                      frame_stride: int = 1) -> np.ndarray:
    """(N, T, A) float32: `button` held on every step, the other buttons released. Row 0 stays the no-op it
    is in every recorded episode (frame 0 is the start); with a frame stride k a step holds the button k
    times, as the data sums the rows between kept frames."""
    turn_signs(np.zeros((1, len(action_names))), action_names)  # names both turn buttons, or says which is missing
    if button not in TURN_BUTTONS:
        raise ValueError(f"button must be one of {', '.join(TURN_BUTTONS)}, got {button!r}")
    actions = np.zeros((n_episodes, n_frames, len(action_names)), dtype=np.float32)
    actions[:, 1:, list(action_names).index(button)] = frame_stride
    return actions


def mean_shifts(frames: np.ndarray) -> np.ndarray:
    """Mean horizontal shift per step (px, + = scene moved right, as turning left moves it) of each video:
    uint8 (N, T, H, W, 3) -> (N,)."""
    return horizontal_shifts(frames).mean(axis=-1)


def replayed_turn_shifts(seeds, first_frames: np.ndarray, n_frames: int, action_names: list[str],
                         replay_options: dict[str, Any], frame_stride: int = 1) -> tuple[dict[str, float], int]:
    """The simulator's mean shift per step with each turn button held, over the episodes whose replay from
    their seed shows their stored first frame (uint8 (N, H, W, 3)), and how many did. Raises ImportError
    without the simulator."""
    from videogpt_core.data.worlds.vizdoom import replay_vizdoom

    steps = (n_frames - 1) * frame_stride + 1
    shifts: dict[str, list[float]] = {button: [] for button in TURN_BUTTONS}
    replayed = 0
    for seed, first_frame in zip(seeds, first_frames):
        per_button = {}
        for button in TURN_BUTTONS:
            try:
                episode = replay_vizdoom(int(seed), held_turn_actions(1, steps, action_names, button)[0],
                                         **replay_options)
            except RuntimeError:  # the player died on the way: no shift to measure
                break
            if not np.array_equal(episode.frames[0], first_frame):  # another engine or map: not this start
                break
            per_button[button] = float(mean_shifts(episode.frames[None, ::frame_stride])[0])
        if len(per_button) == len(TURN_BUTTONS):
            replayed += 1
            for button, shift in per_button.items():
                shifts[button].append(shift)
    return {button: float(np.mean(values)) if values else None for button, values in shifts.items()}, replayed


def true_frames_turn_shifts(truth: np.ndarray, actions: np.ndarray, action_names: list[str],
                            frame_stride: int = 1) -> tuple[dict[str, float | None], dict[str, int]]:
    """The simulator's shift per step for each turn button, from the true frames (uint8 (N, T, H, W, 3)) and
    their actions ((N, T, A)): the median |shift| over the steps that hold that button alone among the turn
    buttons (on every skipped frame too), signed as those steps' median; and how many steps each had."""
    names = list(action_names)
    shifts = horizontal_shifts(truth)  # (N, T-1): the step into frame j is actions[:, j]
    steps = np.asarray(actions, dtype=np.float64)[:, 1:]
    found: dict[str, float | None] = {}
    counts: dict[str, int] = {}
    for button, other in (TURN_BUTTONS, TURN_BUTTONS[::-1]):
        held = (steps[..., names.index(button)] == frame_stride) & (steps[..., names.index(other)] == 0)
        values = shifts[held]
        counts[button] = int(values.size)
        found[button] = float(np.sign(np.median(values)) * np.median(np.abs(values))) if values.size else None
    return found, counts


def held_turn_agreement(left_rollouts: np.ndarray, right_rollouts: np.ndarray,
                        simulator: dict[str, float | None]) -> dict[str, Any]:
    """Mean shift per step of the held-TURN_LEFT and held-TURN_RIGHT rollouts (uint8 (N, T, H, W, 3) each,
    row i of both from the same first frame) beside the simulator's, and the fraction of first frames whose
    two rollouts each shift the simulator's way for their button by at least MIN_SHARE_OF_SIMULATOR of its
    shift (None when the simulator's shift for a button is unknown or zero)."""
    if left_rollouts.shape != right_rollouts.shape:
        raise ValueError(f"the left and right rollouts must have the same shape; got {left_rollouts.shape} and "
                         f"{right_rollouts.shape}")
    model = {"TURN_LEFT": mean_shifts(left_rollouts), "TURN_RIGHT": mean_shifts(right_rollouts)}
    agreement = None
    if all(simulator.get(button) for button in TURN_BUTTONS):
        follows = [(np.sign(model[button]) == np.sign(simulator[button]))
                   & (np.abs(model[button]) >= MIN_SHARE_OF_SIMULATOR * abs(simulator[button]))
                   for button in TURN_BUTTONS]
        agreement = float(np.mean(follows[0] & follows[1]))
    return {
        "first_frames": int(len(left_rollouts)),
        "model_left_shift_px": float(model["TURN_LEFT"].mean()),
        "model_right_shift_px": float(model["TURN_RIGHT"].mean()),
        "simulator_left_shift_px": simulator.get("TURN_LEFT"),
        "simulator_right_shift_px": simulator.get("TURN_RIGHT"),
        "held_turn_agreement": agreement,
    }


def simulator_turn_shifts(truth: np.ndarray, actions: np.ndarray, action_names: list[str], seeds,
                          replay_options: dict[str, Any] | None, frame_stride: int = 1
                          ) -> tuple[dict[str, float | None], str]:
    """The simulator's shift per step for each held turn button and where it comes from: replays from the
    episodes' seeds where possible (seeds and replay_options - scenario, frame_skip - known, the simulator
    installed, the replays start at the stored frames), else the true frames' turning steps."""
    why_not = None
    if seeds is None or replay_options is None:
        why_not = "the file has no test seeds or does not name its scenario and frame skip"
    else:
        try:
            shifts, replayed = replayed_turn_shifts(seeds, truth[:, 0], truth.shape[1], action_names,
                                                    replay_options, frame_stride)
        except ImportError as error:
            why_not = str(error)
        else:
            if replayed:
                return shifts, f"replayed with the button held from {replayed} of {len(truth)} episodes' seeds"
            why_not = "no replay from the seeds both started at the stored first frame and lived to the last"
    shifts, counts = true_frames_turn_shifts(truth, actions, action_names, frame_stride)
    return shifts, (f"the true frames' steps that hold one turn button ({counts['TURN_LEFT']} left, "
                    f"{counts['TURN_RIGHT']} right; median shift); not replayed: {why_not}")


def held_turn_scores(pipeline, truth: np.ndarray, true_actions: np.ndarray, action_names: list[str], seeds,
                     replay_options: dict[str, Any] | None, batch_size: int, options, seed: int,
                     frame_stride: int = 1) -> dict[str, Any]:
    """Held-turn rollouts of the pipeline from each true first frame (truth uint8 (N, T, H, W, 3)), scored
    against the simulator's shift per step (see simulator_turn_shifts)."""
    n_episodes, n_frames = truth.shape[:2]
    action_sets = {button: torch.from_numpy(held_turn_actions(n_episodes, n_frames, action_names, button,
                                                              frame_stride))
                   for button in TURN_BUTTONS}
    rollouts, _conditioning = sample_rollouts(pipeline, truth, action_sets, batch_size, options, seed)
    simulator, source = simulator_turn_shifts(truth, true_actions, action_names, seeds, replay_options,
                                              frame_stride)
    return {**held_turn_agreement(rollouts["TURN_LEFT"], rollouts["TURN_RIGHT"], simulator),
            "steps": n_frames - 1, "simulator": source}

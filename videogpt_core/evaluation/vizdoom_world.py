"""World-model score of the vizdoom world: does a rollout turn the way its actions say?

Turning the player rotates the camera, which shifts the whole picture sideways (turning left moves the scene
to the right), whatever is in view; walking forward expands it about the centre, with no net shift. The
global horizontal shift between consecutive frames, measured by phase correlation, therefore tells a turn's
direction without knowing anything about the scene. Only the top of the frame is used: the player's weapon
at the bottom centre never moves and would pull the correlation towards no shift.
"""
from __future__ import annotations

import json

import cv2
import numpy as np

MIN_SHIFT_PX = 0.5  # a measured shift smaller than this (in 64-pixel frames) counts as "did not turn"
TOP_FRACTION = 0.625  # rows used: above the weapon sprite (freedoom), horizon and walls included


def horizontal_shifts(frames: np.ndarray) -> np.ndarray:
    """Global horizontal shift (pixels, + = scene moved right) from each frame to the next, by phase
    correlation of the top TOP_FRACTION of the grey frames under a Hann window. frames (..., T, H, W, 3) uint8 -> (..., T-1) float64."""
    frames = np.asarray(frames)
    if frames.ndim < 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (..., T, H, W, 3) RGB, got shape {frames.shape}")
    lead, (n_frames, height, width) = frames.shape[:-4], frames.shape[-4:-1]
    height_used = max(8, int(round(height * TOP_FRACTION)))
    grey = frames.reshape(-1, n_frames, height, width, 3)[:, :, :height_used].astype(np.float32).mean(axis=-1)
    height = height_used
    window = cv2.createHanningWindow((width, height), cv2.CV_32F)
    shifts = np.zeros((grey.shape[0], max(n_frames - 1, 0)))
    for video, clip in enumerate(grey):
        for j in range(1, n_frames):
            (dx, _dy), _response = cv2.phaseCorrelate(clip[j - 1], clip[j], window)
            shifts[video, j - 1] = dx
    return shifts.reshape(*lead, max(n_frames - 1, 0))


def turn_signs(actions: np.ndarray, action_names: list[str] | tuple[str, ...]) -> np.ndarray:
    """(..., T, A) actions -> (..., T) +1 where the step turns left, -1 right, 0 neither (or both).
    Works on summed actions too (frame strides add button presses up)."""
    names = list(action_names)
    for button in ("TURN_LEFT", "TURN_RIGHT"):
        if button not in names:
            raise ValueError(f"the actions have no {button} column (columns: {', '.join(names)})")
    actions = np.asarray(actions, dtype=np.float64)
    return np.sign(actions[..., names.index("TURN_LEFT")] - actions[..., names.index("TURN_RIGHT")])


def turn_agreement(frames: np.ndarray, actions: np.ndarray, action_names: list[str] | tuple[str, ...]) -> dict:
    """Over the steps where the true actions turn, the fraction whose frames shift the way the turn says
    (left: scene moves right by at least MIN_SHIFT_PX). frames (N, T, H, W, 3) uint8, actions (N, T, A) with
    actions[:, j] moving frame j-1 to j. Returns turn_agreement (None when no step turns) and turn_steps."""
    frames, actions = np.asarray(frames), np.asarray(actions)
    if frames.ndim != 5 or actions.ndim != 3 or frames.shape[:2] != actions.shape[:2]:
        raise ValueError(f"frames must be (N, T, H, W, 3) and actions (N, T, A) with the same N and T; got "
                         f"{frames.shape} and {actions.shape}")
    expected = turn_signs(actions, action_names)[:, 1:]  # (N, T-1): the step into frame j
    shifts = horizontal_shifts(frames)
    measured = np.where(np.abs(shifts) >= MIN_SHIFT_PX, np.sign(shifts), 0.0)
    turning = expected != 0
    n_turns = int(turning.sum())
    agreement = float(np.mean(measured[turning] == expected[turning])) if n_turns else None
    return {"turn_agreement": agreement, "turn_steps": n_turns}


def action_names_from_attrs(attrs) -> list[str]:
    """The action column names a world file stores (make-dataset writes them as a JSON list)."""
    if "action_names" not in attrs:
        raise ValueError("the file has no 'action_names' attribute; rebuild it with `videogpt make-dataset vizdoom`")
    value = attrs["action_names"]
    return json.loads(value.decode() if isinstance(value, bytes) else value)

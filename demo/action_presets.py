"""Action presets for the Generate tab (named action sequences that make sense for each world) and the action
table's column names.

The pusher world (and any model of no known world) gets 2-D moves; ViZDoom and FetchPush get sequences of
held controls, made into action rows by the world's controls (`WorldControls.rows`), so a preset and a key
press mean the same action.
"""
from __future__ import annotations

import math

import numpy as np

from videogpt_core.data.worlds.controls import controls_for

MOVE_PRESETS = ("push right", "circle", "zigzag", "random", "still")
ACTION_PRESETS = MOVE_PRESETS  # the presets of the pusher world and of models of no known world
PRESET_SPEED = 2.5  # pixels per frame: the pusher world clips commands at 3
ZIGZAG_HALF_PERIOD = 4  # frames before the zigzag turns
RANDOM_HOLD = 4  # frames a random control is held before the next one is drawn

# Held controls per frame, as a function of the frame index (frame 0 is the start frame: nothing held).
HELD_CONTROL_PRESETS = {
    "vizdoom": {
        "turn left": lambda t: ["left"],
        "turn right": lambda t: ["right"],
        "walk forward": lambda t: ["up"],
        "loop": lambda t: ["up", "right"],  # walk while turning: a circle through the room
        "look around": lambda t: ["left"] if (t // 8) % 2 == 0 else ["right"],
        "still": lambda t: [],
    },
    "fetchpush": {
        "push left": lambda t: ["left"],
        "push right": lambda t: ["right"],
        "push towards": lambda t: ["down"],  # towards the camera: down the screen
        "push away": lambda t: ["up"],
        "still": lambda t: [],
    },
}
RANDOM_CONTROLS = {"vizdoom": (["left"], ["right"], ["up"], ["up", "left"], ["up", "right"]),
                   "fetchpush": (["left"], ["right"], ["up"], ["down"], [])}


def action_column_names(action_dim: int, world: str | None = None) -> list[str]:
    """The action table's column names: the world's action names where it is known."""
    if world is not None and action_dim >= 1:
        controls = controls_for(world, action_dim)
        if controls.world == world:
            return list(controls.action_names)
    return ["dx", "dy"] if action_dim == 2 else [f"a{i + 1}" for i in range(action_dim)]


def presets_for(world: str | None) -> tuple[str, ...]:
    """The preset names offered for a model of `world` (None: a model of no known world)."""
    if world in HELD_CONTROL_PRESETS:
        return tuple(HELD_CONTROL_PRESETS[world]) + ("random",)
    return MOVE_PRESETS


def default_preset(world: str | None) -> str:
    return presets_for(world)[0]


def preset_actions(name: str, n_frames: int, action_dim: int = 2, seed: int = 0, world: str | None = None,
                   action_range: list[list[float]] | None = None) -> np.ndarray:
    """(n_frames, action_dim) float32 actions; row 0 is the start frame's (still / no-op)."""
    if name not in presets_for(world):
        raise ValueError(f"unknown action preset {name!r}; choose one of: {', '.join(presets_for(world))}")
    if isinstance(n_frames, bool) or int(n_frames) != n_frames or n_frames < 1:
        raise ValueError(f"n_frames must be a whole number >= 1, got {n_frames!r}")
    if isinstance(action_dim, bool) or int(action_dim) != action_dim or action_dim < 1:
        raise ValueError(f"action_dim must be a whole number >= 1, got {action_dim!r}")
    n_frames, action_dim = int(n_frames), int(action_dim)
    if world in HELD_CONTROL_PRESETS:
        controls = controls_for(world, action_dim, action_range)
        if controls.world == world:
            return controls.rows(_held_controls(world, name, n_frames, seed))
    return _moves(name, n_frames, action_dim, seed)


def _held_controls(world: str, name: str, n_frames: int, seed: int) -> list[list[str]]:
    if name == "random":
        rng = np.random.default_rng(int(seed))
        choices = RANDOM_CONTROLS[world]
        draws = [choices[i] for i in rng.integers(0, len(choices), size=n_frames // RANDOM_HOLD + 1)]
        held = [draws[t // RANDOM_HOLD] for t in range(n_frames)]
    else:
        held = [HELD_CONTROL_PRESETS[world][name](t) for t in range(n_frames)]
    return [[]] + held[1:]


def _moves(name: str, n_frames: int, action_dim: int, seed: int) -> np.ndarray:
    """2-D moves (dx, dy) in pixels per frame; other action sizes get the first coordinates (padded with zeros)."""
    steps = np.arange(n_frames, dtype=np.float64)
    moves = np.zeros((n_frames, 2))
    if name == "push right":
        moves[:, 0] = PRESET_SPEED
    elif name == "circle":
        # One full turn over the clip (at least 8 frames, so short clips still curve gently).
        angle = 2.0 * math.pi * steps / max(8, n_frames - 1)
        moves = PRESET_SPEED * np.stack([np.cos(angle), np.sin(angle)], axis=-1)
    elif name == "zigzag":
        direction = np.where((steps // ZIGZAG_HALF_PERIOD) % 2 == 0, 1.0, -1.0)
        moves = PRESET_SPEED / math.sqrt(2.0) * np.stack([np.ones(n_frames), direction], axis=-1)
    elif name == "random":
        # A smooth random walk (momentum), so the gripper wanders instead of jittering in place.
        rng = np.random.default_rng(int(seed))
        velocity = np.zeros(2)
        for j in range(n_frames):
            velocity = 0.7 * velocity + 0.3 * rng.normal(scale=2.0 * PRESET_SPEED, size=2)
            speed = np.hypot(*velocity)
            moves[j] = velocity * (PRESET_SPEED / speed) if speed > PRESET_SPEED else velocity
    moves[0] = 0.0
    actions = np.zeros((n_frames, action_dim))
    width = min(2, action_dim)
    actions[:, :width] = moves[:, :width]
    return actions.round(2).astype(np.float32)

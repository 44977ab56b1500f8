"""Keyboard controls of each world: which keys (and on-screen buttons) make which action row.

One place for the key -> action mapping of every action-driven world, used by the demo's Play tab (keys,
buttons and the table shown on the page) and by anything else that wants an action row from named controls
(`WorldControls.row(["up", "right"])`). Held controls add their effects to the world's no-op row; the sum is
limited to the world's speed and clipped to its action range.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

# Keys are KeyboardEvent.key values as browsers report them (letters lower-cased by the page).
LEFT_KEYS, RIGHT_KEYS = ("ArrowLeft", "a"), ("ArrowRight", "d")
UP_KEYS, DOWN_KEYS = ("ArrowUp", "w"), ("ArrowDown", "s")
EXTRA_KEYS = (" ",)  # Space: the world's extra action (attack, grip)
PUSHER_SPEED = 2.5  # pixels per frame; the pusher world moves the gripper at most 3 (its action range)
# FetchPush's camera (azimuth 160 degrees) looks along about -x: screen up is (cos 160, sin 160) in the
# robot's (dx, dy), screen right is (sin 160, -cos 160) (checked by replaying moves in the simulator).
_FETCH_AZIMUTH = math.radians(160.0)
_FETCH_UP = (math.cos(_FETCH_AZIMUTH), math.sin(_FETCH_AZIMUTH))
_FETCH_RIGHT = (math.sin(_FETCH_AZIMUTH), -math.cos(_FETCH_AZIMUTH))


@dataclass(frozen=True)
class Control:
    """One control: the keys that hold it, its on-screen button and what it adds to the action row."""

    name: str  # "left", "up", "extra", ...
    keys: tuple[str, ...]
    symbol: str  # the on-screen button's text
    meaning: str  # shown on the page, e.g. "move left"
    effect: tuple[float, ...]  # added to the no-op row while held


@dataclass(frozen=True)
class WorldControls:
    world: str
    action_names: tuple[str, ...]
    noop: tuple[float, ...]  # the row when nothing is held
    controls: tuple[Control, ...]
    low: tuple[float, ...]  # per action column
    high: tuple[float, ...]
    # Columns whose joint (Euclidean) size is limited, e.g. a gripper's (dx, dy) speed, and the limit.
    limited_columns: tuple[int, ...] = ()
    limit: float | None = None

    def __post_init__(self):
        width = len(self.action_names)
        for what in ("noop", "low", "high"):
            if len(getattr(self, what)) != width:
                raise ValueError(f"{self.world} controls: {what} has {len(getattr(self, what))} values, the world "
                                 f"has {width} action columns")
        for control in self.controls:
            if len(control.effect) != width:
                raise ValueError(f"{self.world} control {control.name!r}: effect has {len(control.effect)} "
                                 f"values, the world has {width} action columns")

    @property
    def action_dim(self) -> int:
        return len(self.action_names)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(control.name for control in self.controls)

    def row(self, held: Iterable[str] = ()) -> np.ndarray:
        """(action_dim,) float32: the action row while the named controls are held (none: the no-op)."""
        if isinstance(held, str):
            held = [held]
        held = list(held)
        by_name = {control.name: control for control in self.controls}
        unknown = [name for name in held if name not in by_name]
        if unknown:
            raise ValueError(f"unknown control(s) {unknown} for the {self.world} world; its controls: "
                             f"{', '.join(by_name) or 'none'}")
        row = np.array(self.noop, dtype=np.float64)
        for name in dict.fromkeys(held):  # a control held twice counts once
            row += by_name[name].effect
        if self.limit is not None and self.limited_columns:
            columns = list(self.limited_columns)
            size = float(np.linalg.norm(row[columns]))
            if size > self.limit:  # diagonals move as fast as straight moves
                row[columns] *= self.limit / size
        return np.clip(row, self.low, self.high).astype(np.float32)

    def rows(self, held_per_frame: Iterable[Iterable[str]]) -> np.ndarray:
        """(T, action_dim) float32: one row per frame from the controls held in it (e.g. for action presets)."""
        rows = [self.row(held) for held in held_per_frame]
        return np.stack(rows) if rows else np.zeros((0, self.action_dim), np.float32)

    def describe(self) -> list[tuple[str, str, str]]:
        """(keys, button, meaning) per control, for the page."""
        shown = {"ArrowLeft": "←", "ArrowRight": "→", "ArrowUp": "↑", "ArrowDown": "↓", " ": "Space"}
        return [(" / ".join(shown.get(key, key.upper()) for key in control.keys), control.symbol, control.meaning)
                for control in self.controls]


def _unit(index: int, width: int, value: float = 1.0) -> tuple[float, ...]:
    effect = [0.0] * width
    effect[index] = value
    return tuple(effect)


def pusher_controls() -> WorldControls:
    s = PUSHER_SPEED
    return WorldControls(
        world="pusher", action_names=("dx", "dy"), noop=(0.0, 0.0),
        controls=(Control("left", LEFT_KEYS, "←", "move the gripper left", (-s, 0.0)),
                  Control("right", RIGHT_KEYS, "→", "move the gripper right", (s, 0.0)),
                  Control("up", UP_KEYS, "↑", "move the gripper up", (0.0, -s)),  # image y points down
                  Control("down", DOWN_KEYS, "↓", "move the gripper down", (0.0, s))),
        low=(-3.0, -3.0), high=(3.0, 3.0), limited_columns=(0, 1), limit=s)


def vizdoom_controls(buttons: tuple[str, ...]) -> WorldControls:
    """Multi-hot rows over the scenario's buttons; controls for buttons the scenario lacks are left out."""
    column = {name: index for index, name in enumerate(buttons)}
    width = len(buttons)
    wanted = (("left", LEFT_KEYS, "←", "turn left", "TURN_LEFT"),
              ("right", RIGHT_KEYS, "→", "turn right", "TURN_RIGHT"),
              ("up", UP_KEYS, "↑", "move forward", "MOVE_FORWARD"),
              ("down", DOWN_KEYS, "↓", "move backward", "MOVE_BACKWARD"),
              ("extra", EXTRA_KEYS, "Space", "attack", "ATTACK"))
    controls = tuple(Control(name, keys, symbol, meaning, _unit(column[button], width))
                     for name, keys, symbol, meaning, button in wanted if button in column)
    return WorldControls(world="vizdoom", action_names=tuple(buttons), noop=(0.0,) * width, controls=controls,
                         low=(0.0,) * width, high=(1.0,) * width)


def fetchpush_controls() -> WorldControls:
    """Arrows move the hand as seen on screen, Q / E raise and lower it, Space opens the gripper (no key:
    the gripper stays closed, as in the recorded episodes)."""
    up, right = _FETCH_UP, _FETCH_RIGHT
    return WorldControls(
        world="fetchpush", action_names=("dx", "dy", "dz", "gripper"), noop=(0.0, 0.0, 0.0, -1.0),
        controls=(Control("left", LEFT_KEYS, "←", "move the hand left", (-right[0], -right[1], 0.0, 0.0)),
                  Control("right", RIGHT_KEYS, "→", "move the hand right", (right[0], right[1], 0.0, 0.0)),
                  Control("up", UP_KEYS, "↑", "move the hand up the screen", (up[0], up[1], 0.0, 0.0)),
                  Control("down", DOWN_KEYS, "↓", "move the hand down the screen", (-up[0], -up[1], 0.0, 0.0)),
                  Control("raise", ("q",), "Q", "raise the hand", (0.0, 0.0, 1.0, 0.0)),
                  Control("lower", ("e",), "E", "lower the hand", (0.0, 0.0, -1.0, 0.0)),
                  Control("extra", EXTRA_KEYS, "Space", "open the gripper", (0.0, 0.0, 0.0, 2.0))),
        low=(-1.0,) * 4, high=(1.0,) * 4, limited_columns=(0, 1), limit=1.0)


def generic_controls(action_range: list[list[float]] | None, action_dim: int) -> WorldControls:
    """For a model of no known world: arrows drive the first two action columns at 80% of their range."""
    if action_dim < 1:
        raise ValueError("a world without actions has no controls")
    bounds = action_range or [[-1.0, 1.0]] * action_dim
    low = tuple(float(b[0]) for b in bounds)
    high = tuple(float(b[1]) for b in bounds)
    noop = tuple(float(np.clip(0.0, lo, hi)) for lo, hi in zip(low, high))
    controls = []
    for name, keys, symbol, column, sign in (("left", LEFT_KEYS, "←", 0, -1), ("right", RIGHT_KEYS, "→", 0, 1),
                                             ("up", UP_KEYS, "↑", 1, -1), ("down", DOWN_KEYS, "↓", 1, 1)):
        if column < action_dim:
            size = 0.8 * (high[column] if sign > 0 else -low[column])
            controls.append(Control(name, keys, symbol, f"action {column + 1} {'+' if sign > 0 else '-'}",
                                    _unit(column, action_dim, sign * size)))
    return WorldControls(world="generic", action_names=tuple(f"a{i + 1}" for i in range(action_dim)), noop=noop,
                         controls=tuple(controls), low=low, high=high)


def world_of_model(model_name: str) -> str | None:
    """The built-in world a model is named after ('pusher', 'pusher-large', 'vizdoom-freedoom'), or None."""
    from . import WORLDS

    name = model_name.lower().replace("_", "-")
    for world in WORLDS:
        if name == world or name.startswith(world + "-"):
            return world
    return None


def controls_for(world: str | None, action_dim: int, action_range: list[list[float]] | None = None) -> WorldControls:
    """The controls of `world` for a model with `action_dim` action columns (vizdoom: the scenario with that
    many buttons); a model of another or no world gets generic arrow controls. With the model's action_range
    (recorded at training), rows are clipped to it too: a key never asks for an action the model never saw
    (e.g. FetchPush's recorded episodes keep the gripper closed, so Space opens it only as far as they did)."""
    controls = _world_controls(world, action_dim, action_range)
    if action_range is None or controls.world == "generic":
        return controls
    low = tuple(max(a, float(b[0])) for a, b in zip(controls.low, action_range))
    high = tuple(min(a, float(b[1])) for a, b in zip(controls.high, action_range))
    return dataclasses.replace(controls, low=low, high=high)


def _world_controls(world: str | None, action_dim: int, action_range: list[list[float]] | None) -> WorldControls:
    if world == "pusher" and action_dim == 2:
        return pusher_controls()
    if world == "fetchpush" and action_dim == 4:
        return fetchpush_controls()
    if world == "vizdoom":
        from .vizdoom import SCENARIOS

        for scenario in SCENARIOS.values():
            if len(scenario.buttons) == action_dim:
                return vizdoom_controls(scenario.buttons)
    return generic_controls(action_range, action_dim)

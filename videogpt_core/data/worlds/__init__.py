"""Built-in worlds (seeded, deterministic, 64x64 RGB, nothing downloaded) and their train/test seeds: procedural
ones (pusher, digits) and simulated ones (vizdoom, fetchpush; the simulators are the optional extra "worlds").

Splits are disjoint by seed: with base seed S, "train" episode i uses seed S + i and "test" episode i uses
seed TEST_SEED_OFFSET + S + i, so the two never meet while S + n_train <= TEST_SEED_OFFSET.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

import numpy as np

from .digits import CLASS_NAMES as DIGIT_CLASS_NAMES
from .digits import DigitsEpisode, generate_digits_episode
from .pusher import MAX_OBJECTS, PusherEpisode, generate_pusher_episode, simulate_pusher

TEST_SEED_OFFSET = 10_000_000
SPLITS = ("train", "test")


@dataclass(frozen=True)
class WorldSpec:
    """What a world produces, so generic code (make-dataset, the demo) can handle every world alike."""

    name: str
    description: str
    generate: Callable[[int, int], PusherEpisode | DigitsEpisode]  # (seed, n_frames) -> episode
    fps: int
    action_dim: int  # 0: no actions
    class_names: tuple[str, ...]  # empty: no classes
    n_things: int  # positions per frame, padded with NaN where an episode has fewer; 0: no positions
    default_frames: int = 32  # episode length when --frames is not given
    action_names: tuple[str, ...] = ()  # what each action column means (stored as the file's attribute)
    attrs: tuple[tuple[str, Any], ...] = ()  # further file attributes (e.g. the scenario)
    options: tuple[str, ...] = ()  # keyword options `configure` takes (e.g. scenario, frame_skip)
    configure: Callable[..., WorldSpec] | None = None  # options -> the spec of that variant of the world


def _vizdoom_spec(scenario: str = "health_gathering_supreme", frame_skip: int = 4) -> WorldSpec:
    """The vizdoom world for one scenario and frame skip; nothing imports the engine until an episode is drawn."""
    from .vizdoom import check_frame_skip, generate_vizdoom_episode, get_scenario

    spec, frame_skip = get_scenario(scenario), check_frame_skip(frame_skip)
    return WorldSpec(
        name="vizdoom",
        description="first-person Doom clips from the ViZDoom engine with a scripted explorer; actions are the "
                    f"scenario's buttons, multi-hot (scenarios: health_gathering_supreme, freedoom; default "
                    f"health_gathering_supreme with frame skip 4; this one: {scenario} - {spec.description})",
        generate=partial(generate_vizdoom_episode, scenario=scenario, frame_skip=frame_skip),
        fps=round(35 / frame_skip),
        action_dim=len(spec.buttons),
        class_names=(),
        n_things=0,
        default_frames=spec.default_frames,
        action_names=spec.buttons,
        attrs=(("scenario", scenario), ("frame_skip", frame_skip)),
        options=("scenario", "frame_skip"),
        configure=_vizdoom_spec,
    )


def _fetchpush_spec() -> WorldSpec:
    from .fetchpush import THINGS, generate_fetchpush_episode

    return WorldSpec(
        name="fetchpush",
        description="a MuJoCo Fetch arm pushing a red block on a table, seen from above (Gymnasium-Robotics "
                    "FetchPush); a scripted noisy pusher, 4-number actions (dx, dy, dz, gripper)",
        generate=generate_fetchpush_episode,
        fps=25,
        action_dim=4,
        class_names=(),
        n_things=len(THINGS),
        action_names=("dx", "dy", "dz", "gripper"),
        attrs=(("things", ",".join(THINGS)),),
    )


WORLDS: dict[str, WorldSpec] = {
    "pusher": WorldSpec(
        name="pusher",
        description="BAIR-like top-down table: a gripper driven by (dx, dy) actions pushes 1-3 coloured discs",
        generate=generate_pusher_episode,
        fps=10,
        action_dim=2,
        class_names=(),
        n_things=1 + MAX_OBJECTS,
    ),
    "digits": WorldSpec(
        name="digits",
        description="Moving-MNIST-like: one hand-drawn-looking digit (class 0-9) bouncing on a black frame",
        generate=generate_digits_episode,
        fps=10,
        action_dim=0,
        class_names=DIGIT_CLASS_NAMES,
        n_things=1,
    ),
    # Simulated worlds: the simulators are an optional extra, imported only when an episode is drawn.
    "vizdoom": _vizdoom_spec(),
    "fetchpush": _fetchpush_spec(),
}


def get_world(name: str, **options: Any) -> WorldSpec:
    """The world called `name`, configured with `options` (those that are None are left at their defaults)."""
    if name not in WORLDS:
        raise ValueError(f"unknown world {name!r}; choose one of: {', '.join(WORLDS)}")
    spec = WORLDS[name]
    options = {key: value for key, value in options.items() if value is not None}
    if not options:
        return spec
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        allowed = ", ".join(spec.options) if spec.options else "none"
        raise ValueError(f"the {name} world has no option {', '.join(unknown)} (its options: {allowed})")
    return spec.configure(**options)


def checked_episode_counts(n_train: int, n_test: int | None, n_frames: int, workers: int) -> int:
    """The number of test episodes (default: a tenth of n_train, at least 1), after checking a data set's sizes."""
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    if n_train < 1:
        raise ValueError(f"--n must be >= 1, got {n_train}")
    n_test = max(1, n_train // 10) if n_test is None else n_test
    if n_test < 1:
        raise ValueError(f"--n-test must be >= 1, got {n_test}")
    if n_frames < 2:
        raise ValueError(f"--frames must be >= 2 (a video), got {n_frames}")
    return n_test


def split_seeds(split: str, n: int, base_seed: int = 0) -> np.ndarray:
    """The (n,) int64 episode seeds of `split` ("train" or "test") for base seed `base_seed`."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose 'train' or 'test'")
    if n < 0 or base_seed < 0:
        raise ValueError(f"n and base_seed must be >= 0, got n={n}, base_seed={base_seed}")
    if base_seed + n > TEST_SEED_OFFSET:
        raise ValueError(
            f"base_seed + n = {base_seed + n} would reach the test seeds (from {TEST_SEED_OFFSET}); "
            "use a smaller --seed or fewer episodes"
        )
    offset = TEST_SEED_OFFSET if split == "test" else 0
    return offset + base_seed + np.arange(n, dtype=np.int64)


__all__ = [
    "checked_episode_counts",
    "DIGIT_CLASS_NAMES", "DigitsEpisode", "PusherEpisode", "SPLITS", "TEST_SEED_OFFSET", "WORLDS", "WorldSpec",
    "generate_digits_episode", "generate_pusher_episode", "get_world", "simulate_pusher", "split_seeds",
]

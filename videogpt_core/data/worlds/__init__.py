"""Built-in procedural worlds (seeded, deterministic, 64x64 RGB, nothing downloaded) and their train/test seeds.

Splits are disjoint by seed: with base seed S, "train" episode i uses seed S + i and "test" episode i uses
seed TEST_SEED_OFFSET + S + i, so the two never meet while S + n_train <= TEST_SEED_OFFSET.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

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
    n_things: int  # positions per frame, padded with NaN where an episode has fewer


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
}


def get_world(name: str) -> WorldSpec:
    if name not in WORLDS:
        raise ValueError(f"unknown world {name!r}; choose one of: {', '.join(WORLDS)}")
    return WORLDS[name]


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
    "DIGIT_CLASS_NAMES", "DigitsEpisode", "PusherEpisode", "SPLITS", "TEST_SEED_OFFSET", "WORLDS", "WorldSpec",
    "generate_digits_episode", "generate_pusher_episode", "get_world", "simulate_pusher", "split_seeds",
]

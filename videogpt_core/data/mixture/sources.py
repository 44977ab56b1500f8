"""The mixture's sources and how one seed becomes one episode.

Sources: "camera" (a photograph filmed by a synthetic moving camera with moving cut-outs over it),
"dead_leaves" (procedural video with natural-image statistics) and one source per built-in world whose
simulator imports here (pusher, digits, and any other registered world; a world whose package is missing is
skipped with a note). The seed alone picks the source (by the mix's proportions) and everything in the episode;
test seeds use only the test images (see natural_images.py), and a world's episode for seed s is that world's
own episode s, so test episodes of a world are that world's test episodes.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Iterable

import numpy as np

from ..worlds import WORLDS, get_world
from .camera_video import camera_video
from .dead_leaves import dead_leaves_video
from .natural_images import INSTALL_HINT, ImageSource, available_images

IMAGE_SOURCES = ("camera", "dead_leaves")
# Share of each kind of source; the world share is split evenly between the worlds that run here.
DEFAULT_SHARES = {"camera": 0.5, "dead_leaves": 0.3, "worlds": 0.2}
_SALT = 0x313C


@lru_cache(maxsize=None)
def _world_problem(name: str) -> str | None:
    """Why world `name` cannot render here (its simulator is missing or cannot start), or None if it can.
    Probed once per process with a 2-frame episode: simulators take seconds to start."""
    try:
        get_world(name).generate(0, 2)
    except (ImportError, RuntimeError, OSError) as error:
        return f"world {name!r} skipped: {type(error).__name__}: {error}"
    return None


def available_worlds(names: Iterable[str] | None = None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Those of the registered worlds `names` (default: all) that render here, in the registry's order, and a
    note for each skipped one. The order is the registry's whatever the order of `names`: the sources' order
    decides which source a seed picks, so the same seeds give the same episodes in every run."""
    names = set(WORLDS if names is None else names)
    problems = {name: _world_problem(name) for name in WORLDS if name in names}
    return (tuple(name for name, problem in problems.items() if problem is None),
            tuple(problem for problem in problems.values() if problem))


def parse_mix(text: str | None, worlds: tuple[str, ...]) -> dict[str, float]:
    """Source -> probability. `text` is like "camera=0.5,dead_leaves=0.3,worlds=0.2" (normalised; "worlds"
    is shared evenly by `worlds`, a world named on its own gets its own share); None is DEFAULT_SHARES."""
    shares: dict[str, float] = {}
    if text is None:
        shares = dict(DEFAULT_SHARES)
    else:
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, _, value = item.partition("=")
            name = name.strip().replace("-", "_")
            try:
                share = float(value)
            except ValueError:
                raise ValueError(f"--mix item {item!r} is not NAME=SHARE (e.g. camera=0.5)") from None
            if share < 0:
                raise ValueError(f"--mix share of {name!r} must be >= 0, got {share}")
            known = (*IMAGE_SOURCES, "worlds", *WORLDS)
            if name not in known:
                raise ValueError(f"--mix names unknown source {name!r}; choose from {', '.join(known)}")
            if name in WORLDS and name not in worlds and share > 0:
                raise ValueError(f"--mix names world {name!r}, which cannot run here (see the skipped worlds)")
            shares[name] = share
    probabilities = {name: shares[name] for name in IMAGE_SOURCES if shares.get(name)}
    named_worlds = [name for name in worlds if name in shares]
    for name in named_worlds:
        if shares[name]:
            probabilities[name] = shares[name]
    rest = [name for name in worlds if name not in named_worlds]
    if shares.get("worlds") and rest:
        for name in rest:
            probabilities[name] = shares["worlds"] / len(rest)
    total = sum(probabilities.values())
    if total <= 0:
        raise ValueError(f"--mix {text!r} gives every available source a share of 0")
    return {name: value / total for name, value in probabilities.items()}


class MixtureSources:
    """Everything fixed for one data set: the images of each split, the worlds that run, the probabilities."""

    def __init__(self, mix: str | None = None):
        self.images: dict[str, tuple[ImageSource, ...]] = {}
        notes: list[str] = []
        for split in ("train", "test"):
            self.images[split], split_notes = available_images(split)
            notes += split_notes
        # Only the worlds the mix can pick are started: a simulator takes seconds to start.
        named = None if mix is None else {part.partition("=")[0].strip() for part in mix.split(",")}
        self.worlds, world_notes = available_worlds(None if named is None or "worlds" in named else named)
        self.notes = tuple(notes) + world_notes
        self.probabilities = parse_mix(mix, self.worlds)
        if any(name in IMAGE_SOURCES for name in self.probabilities):
            for split, images in self.images.items():
                if not images:
                    raise ImportError(f"no {split} images are installed for the camera and dead-leaves sources; "
                                      f"install them with: {INSTALL_HINT}")
        self.names = tuple(self.probabilities)

    def episode(self, seed: int, split: str, n_frames: int, size: int = 64) -> tuple[np.ndarray, str, list[str]]:
        """(frames uint8 (T, size, size, 3), source name, names of the images used) for `seed` of `split`."""
        rng = np.random.default_rng([_SALT, int(seed)])
        source = self.names[int(rng.choice(len(self.names), p=list(self.probabilities.values())))]
        images = self.images[split]
        if source == "camera":
            frames, used = camera_video(rng, images, n_frames, size)
            return frames, source, used
        if source == "dead_leaves":
            return dead_leaves_video(rng, images, n_frames, size), source, []
        frames = np.asarray(get_world(source).generate(int(seed), n_frames).frames)
        if frames.shape[1:3] != (size, size):
            import cv2

            shrink = frames.shape[1] > size or frames.shape[2] > size
            frames = np.stack([cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA if shrink else
                                          cv2.INTER_LINEAR) for frame in frames])
        return frames.astype(np.uint8), source, []

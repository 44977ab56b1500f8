"""`videogpt make-dataset mixture`: render the mixture's train and test episodes into one BAIR-layout HDF5 file.

Layout of DIR/mixture.hdf5, for split in ("train", "test"):
  {split}_data     uint8 (total_frames, S, S, 3)  all episodes' frames, back to back (S = --resolution, default 64)
  {split}_idx      int64 (n_videos,)              start frame of each episode in {split}_data
  {split}_seeds    int64 (n_videos,)              the seed that regenerates each episode
  {split}_source   int64 (n_videos,)              index of the episode's source in attrs["sources"]
attrs: world="mixture", fps, n_frames, base_seed, description, sources (JSON list of names),
  mix (JSON source -> probability), source_counts (JSON split -> source -> episodes), train_images / test_images
  (JSON lists of the photographs each split may use), notes (JSON list: sources skipped and why).
"""
from __future__ import annotations

import json
import os
from functools import partial as partial_function
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from ...io.atomic_files import atomic_path
from ..episode_workers import episode_renderer
from ..worlds import SPLITS, checked_episode_counts, split_seeds
from ..worlds.simulators import closing_new_simulators
from .sources import MixtureSources

FPS = 10
_WRITE_BATCH = 64  # episodes buffered per HDF5 write


def _render_episode(sources: MixtureSources, job: tuple[int, str, int, int]) -> tuple[np.ndarray, str, list[str]]:
    """The episode of a job (seed, split, n_frames, size); a module-level function so worker processes can run it."""
    seed, split, n_frames, size = job
    return sources.episode(seed, split, n_frames, size)


def _describe_episode(job: tuple[int, str, int, int]) -> str:
    return f"mixture {job[1]} episode seed {job[0]}"


@closing_new_simulators()  # also those started to see which worlds run here
def write_mixture_dataset(out_dir: str | os.PathLike, n_train: int, n_test: int | None = None,
                          n_frames: int = 16, base_seed: int = 0, resolution: int = 64, mix: str | None = None,
                          progress: bool = True, workers: int = 1, overwrite: bool = False) -> Path:
    """Render `n_train` + `n_test` mixture episodes into out_dir/mixture.hdf5 (see the module docstring).

    `workers` > 1 renders episodes in that many processes; the file is the same (an episode depends on its seed).
    """
    n_test = checked_episode_counts(n_train, n_test, n_frames, workers)
    if resolution < 16 or resolution % 8:
        raise ValueError(f"--resolution must be a multiple of 8 and >= 16, got {resolution}")
    sources = MixtureSources(mix)
    for note in sources.notes:
        print(f"note: {note}")
    seeds = {"train": split_seeds("train", n_train, base_seed), "test": split_seeds("test", n_test, base_seed)}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "mixture.hdf5"
    if path.exists() and not overwrite:  # checked before rendering: a data set is hours of work to redo
        raise ValueError(f"{path} already exists; pass --overwrite to replace it, or choose another --out")
    counts: dict[str, dict[str, int]] = {}
    render_episode = partial_function(_render_episode, sources)
    # The workers start before the file is open, so that they do not hold it. Written beside `path` and renamed
    # into place only when complete.
    with episode_renderer(workers, render_episode, _describe_episode) as render, \
            atomic_path(path) as partial, h5py.File(partial, "w") as file:
        file.attrs.update(
            world="mixture", fps=FPS, n_frames=n_frames, base_seed=base_seed, action_dim=0,
            description="photographs filmed by a synthetic moving camera with moving cut-outs, dead-leaves "
                        "video, and the built-in worlds",
            sources=json.dumps(list(sources.names)), mix=json.dumps(sources.probabilities),
            train_images=json.dumps([image.name for image in sources.images["train"]]),
            test_images=json.dumps([image.name for image in sources.images["test"]]),
            notes=json.dumps(list(sources.notes)),
        )
        for split in SPLITS:
            split_seed_list = seeds[split]
            n_videos = len(split_seed_list)
            data = file.create_dataset(f"{split}_data", (n_videos * n_frames, resolution, resolution, 3), np.uint8,
                                       chunks=(n_frames, resolution, resolution, 3), compression="lzf")
            file[f"{split}_idx"] = np.arange(n_videos, dtype=np.int64) * n_frames
            file[f"{split}_seeds"] = split_seed_list
            source_index = np.zeros(n_videos, np.int64)
            bar = tqdm(total=n_videos, desc=f"mixture {split}", unit="episode", disable=not progress)
            for start in range(0, n_videos, _WRITE_BATCH):
                batch = render([(int(seed), split, n_frames, resolution)
                                for seed in split_seed_list[start: start + _WRITE_BATCH]])
                for offset, (_, source, _) in enumerate(batch):
                    source_index[start + offset] = sources.names.index(source)
                data[start * n_frames: (start + len(batch)) * n_frames] = np.concatenate([item[0] for item in batch])
                bar.update(len(batch))
            bar.close()
            file[f"{split}_source"] = source_index
            counts[split] = {name: int((source_index == i).sum()) for i, name in enumerate(sources.names)}
        file.attrs["source_counts"] = json.dumps(counts)
    return path

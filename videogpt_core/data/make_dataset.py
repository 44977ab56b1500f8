"""`videogpt make-dataset WORLD`: render a built-in world's train and test episodes into one BAIR-layout HDF5 file.

Layout of DIR/WORLD.hdf5, for split in ("train", "test"):
  {split}_data       uint8   (total_frames, 64, 64, 3)  all episodes' frames, back to back
  {split}_idx        int64   (n_videos,)                start frame of each episode in {split}_data
  {split}_seeds      int64   (n_videos,)                the seed that regenerates each episode
  {split}_positions  float32 (total_frames, n_things, 2) (x, y) pixel centres; NaN for things an episode lacks
                                                        (fetchpush: gripper, block)
  {split}_actions    float32 (total_frames, action_dim) worlds with actions; actions[j] moved frame j-1 to j
                                                        (0 at each episode's first frame)
  {split}_labels     int64   (n_videos,)                worlds with classes
  {split}_object_colours uint8 (n_videos, 3, 3)         pusher: RGB of each object (rows of absent objects are 0)
attrs: world, fps, action_dim, n_frames, base_seed, description, class_names (JSON list; worlds with classes),
action_names (JSON list; worlds with named actions), and a world's own (vizdoom: scenario, frame_skip;
fetchpush: things, the order of the positions). Worlds without positions (vizdoom) have no {split}_positions.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from ..io.atomic_files import atomic_path
from .episode_workers import WorkerDied, episode_renderer
from .worlds import SPLITS, TEST_SEED_OFFSET, WORLDS, WorldSpec, checked_episode_counts, get_world, split_seeds
from .worlds.pusher import MAX_OBJECTS

_WRITE_BATCH = 64  # episodes buffered per HDF5 write: fewer, larger writes are much faster


def _create_split(
    file: h5py.File, split: str, spec: WorldSpec, n_videos: int, n_frames: int
) -> dict[str, h5py.Dataset]:
    total = n_videos * n_frames
    chunk = max(1, min(n_frames, total))  # one episode per chunk: reading a clip touches one or two chunks
    datasets = {
        "data": file.create_dataset(f"{split}_data", (total, 64, 64, 3), np.uint8,
                                    chunks=(chunk, 64, 64, 3), compression="lzf"),
    }
    if spec.n_things:
        datasets["positions"] = file.create_dataset(f"{split}_positions", (total, spec.n_things, 2), np.float32)
    if spec.action_dim:
        datasets["actions"] = file.create_dataset(f"{split}_actions", (total, spec.action_dim), np.float32)
    if spec.class_names:
        datasets["labels"] = file.create_dataset(f"{split}_labels", (n_videos,), np.int64)
    if spec.name == "pusher":
        datasets["object_colours"] = file.create_dataset(f"{split}_object_colours", (n_videos, MAX_OBJECTS, 3),
                                                         np.uint8)
    return datasets


def _episode_arrays(spec: WorldSpec, episode, n_frames: int) -> dict[str, np.ndarray]:
    arrays = {"data": episode.frames}
    if spec.n_things:
        positions = np.full((n_frames, spec.n_things, 2), np.nan, dtype=np.float32)
        positions[:, : episode.positions.shape[1]] = episode.positions
        arrays["positions"] = positions
    if spec.action_dim:
        arrays["actions"] = episode.actions
    if spec.class_names:
        arrays["labels"] = np.array([episode.label], dtype=np.int64)
    if spec.name == "pusher":
        colours = np.zeros((1, MAX_OBJECTS, 3), dtype=np.uint8)
        colours[0, : len(episode.object_colours)] = episode.object_colours
        arrays["object_colours"] = colours
    return arrays


def _render_episode(job: tuple[str, int, int, tuple]) -> dict[str, np.ndarray]:
    """One episode's arrays; a module-level function so worker processes can run it."""
    world, seed, n_frames, options = job
    spec = get_world(world, **dict(options))
    return _episode_arrays(spec, spec.generate(seed, n_frames), n_frames)


def _describe_episode(job: tuple[str, int, int, tuple]) -> str:
    return f"{job[0]} episode seed {job[1]}"


def write_world_dataset(world: str, out_dir: str | os.PathLike, n_train: int, n_test: int | None = None,
                        n_frames: int | None = None, base_seed: int = 0, progress: bool = True, workers: int = 1,
                        overwrite: bool = False, **options) -> Path:
    """Render `n_train` + `n_test` episodes of `world` into out_dir/WORLD.hdf5 (see the module docstring).

    `workers` > 1 renders episodes in that many processes; the file is the same (each episode depends on its
    seed alone). `n_frames` None: the world's default length. `options`: the world's own (e.g. vizdoom's
    scenario and frame_skip); None values keep their defaults.
    """
    spec = get_world(world, **options)
    options = tuple(sorted((key, value) for key, value in options.items() if value is not None))
    n_frames = spec.default_frames if n_frames is None else n_frames
    n_test = checked_episode_counts(n_train, n_test, n_frames, workers)
    seeds = {"train": split_seeds("train", n_train, base_seed), "test": split_seeds("test", n_test, base_seed)}
    out_dir = Path(out_dir)
    path = out_dir / f"{world}.hdf5"
    if path.exists() and not overwrite:  # checked before rendering: a data set is hours of work to redo
        raise ValueError(f"{path} already exists; pass --overwrite to replace it, or choose another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    with episode_renderer(workers, _render_episode, _describe_episode) as render:
        if workers == 1:
            # Start the simulator before the file is open: the vizdoom engine is a child process that would
            # inherit the open file and keep its lock after we close it (the workers start before it, too).
            render([(world, int(seeds["train"][0]), 2, options)])
        # Written beside `path` and renamed into place only when complete.
        with atomic_path(path) as partial, h5py.File(partial, "w") as file:
            file.attrs.update(world=world, fps=spec.fps, action_dim=spec.action_dim, n_frames=n_frames,
                              base_seed=base_seed, description=spec.description)
            if spec.class_names:
                file.attrs["class_names"] = json.dumps(list(spec.class_names))
            if spec.action_names:
                file.attrs["action_names"] = json.dumps(list(spec.action_names))
            file.attrs.update(dict(spec.attrs))
            for split in SPLITS:
                split_seed_list = seeds[split]
                datasets = _create_split(file, split, spec, len(split_seed_list), n_frames)
                file[f"{split}_idx"] = np.arange(len(split_seed_list), dtype=np.int64) * n_frames
                file[f"{split}_seeds"] = split_seed_list
                bar = tqdm(total=len(split_seed_list), desc=f"{world} {split}", unit="episode",
                           disable=not progress)
                for start in range(0, len(split_seed_list), _WRITE_BATCH):
                    jobs = [(world, int(seed), n_frames, options) for seed in split_seed_list[start: start + _WRITE_BATCH]]
                    batch = render(jobs)
                    stop = start + len(batch)
                    for key, dataset in datasets.items():
                        per_video = key in ("labels", "object_colours")
                        rows = slice(start, stop) if per_video else slice(start * n_frames, stop * n_frames)
                        dataset[rows] = np.concatenate([arrays[key] for arrays in batch])
                    bar.update(len(batch))
                bar.close()
    return path


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised as Ctrl-C's KeyboardInterrupt is, so that the same clean-up runs."""


def _raise_terminated(signum, frame):
    raise _Terminated()


def _run_make_dataset(args: argparse.Namespace) -> int:
    """The command. SIGTERM stops it as Ctrl-C does: the partial file is deleted, the workers and simulators
    are closed."""
    previous = signal.signal(signal.SIGTERM, _raise_terminated) \
        if threading.current_thread() is threading.main_thread() else None
    try:
        return _make_dataset(args)
    except KeyboardInterrupt as interrupt:
        signum = signal.SIGTERM if isinstance(interrupt, _Terminated) else signal.SIGINT
        print(f"videogpt make-dataset: stopped by {signum.name}; nothing was written", file=sys.stderr)
        return 128 + signum
    except WorkerDied as error:
        print(f"videogpt make-dataset: error: {error}; nothing was written", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _make_dataset(args: argparse.Namespace) -> int:
    if args.world == "mixture":
        from .mixture import write_mixture_dataset

        frames = 32 if args.frames is None else args.frames
        path = write_mixture_dataset(args.out, args.n, args.n_test, frames, args.seed, args.resolution,
                                     args.mix, progress=not args.quiet, workers=args.workers,
                                     overwrite=args.overwrite)
        print(f"wrote {path}")
        return 0
    path = write_world_dataset(args.world, args.out, args.n, args.n_test, args.frames, args.seed,
                               progress=not args.quiet, workers=args.workers, overwrite=args.overwrite,
                               scenario=args.scenario, frame_skip=args.frame_skip)
    n_test = max(1, args.n // 10) if args.n_test is None else args.n_test
    with h5py.File(path, "r") as file:
        n_frames = int(file.attrs["n_frames"])
    print(f"wrote {path} ({args.n} train + {n_test} test episodes of {n_frames} frames)")
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `make-dataset` on the `videogpt` command line."""
    worlds = "; ".join(f"{spec.name}: {spec.description}" for spec in WORLDS.values())
    parser = subparsers.add_parser(
        "make-dataset",
        help="render a built-in synthetic world into a BAIR-layout HDF5 data set",
        description=(
            "Render seeded episodes of a built-in world (64x64 RGB, nothing downloaded; vizdoom and fetchpush "
            "need the simulators: pip install -e \".[worlds]\") into "
            "OUT/WORLD.hdf5 with 'train' and 'test' splits in the BAIR HDF5 layout that the data loaders read "
            f"({{split}}_data, _idx, _actions, _labels, _positions, _seeds). Worlds: {worlds}. "
            f"Train episode i uses seed SEED+i, test episode i uses seed {TEST_SEED_OFFSET:_}+SEED+i, "
            "so the splits never share an episode."
        ),
    )
    parser.add_argument("world", choices=sorted([*WORLDS, "mixture"]),
                        help="which world to render; 'mixture': photographs filmed by a synthetic camera, "
                             "dead-leaves video and every world that runs here (needs pip install -e '.[data]')")
    parser.add_argument("--out", required=True, help="output folder; the file is OUT/WORLD.hdf5")
    parser.add_argument("--n", type=int, required=True, help="number of training episodes")
    parser.add_argument("--n-test", type=int, default=None, help="number of test episodes (default: N//10, at least 1)")
    parser.add_argument("--frames", type=int, default=None,
                        help="frames per episode (default: 32; vizdoom health_gathering_supreme: 100)")
    parser.add_argument("--scenario", default=None,
                        help="vizdoom only: health_gathering_supreme (the default, the paper's) or freedoom "
                             "(Freedoom Phase 2 maps, monsters)")
    parser.add_argument("--frame-skip", type=int, default=None,
                        help="vizdoom only: game tics per frame, each holding the frame's buttons (default: 4)")
    parser.add_argument("--seed", type=int, default=0, help="base seed of both splits (default: 0)")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes rendering episodes in parallel (default: 1); the file does not depend on it")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT/WORLD.hdf5 if it exists")
    parser.add_argument("--mix", default=None,
                        help="mixture only: source shares, e.g. camera=0.5,dead_leaves=0.3,worlds=0.2 (the default; "
                             "'worlds' is split evenly between the worlds that run here, or name a world)")
    parser.add_argument("--resolution", type=int, default=64, help="mixture only: frame size in pixels (default: 64)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=_run_make_dataset)

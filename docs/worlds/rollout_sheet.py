"""Contact sheet of a world model's rollouts beside the simulator: for each test episode a pair of rows, the
real frames on top (16 by default, `--frames`) and below them the model's frames from the real first frame and
the real actions (past the prior's window the pipeline slides it along).

    python docs/worlds/rollout_sheet.py --checkpoint checkpoints/vizdoom --data data/vizdoom/vizdoom.hdf5

Writes ROLLOUTS.png into the checkpoint folder (episodes = the first test episodes of the file; every other
frame shown, upscaled 2x; seed 0, default sampling).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

import videogpt_core


def rollout_rows(pipeline, data: Path, n_episodes: int, seed: int,
                 n_frames: int = 16) -> list[tuple[np.ndarray, np.ndarray]]:
    """(real frames, sampled frames), each (n_frames, H, W, 3) uint8, for the first n_episodes test episodes."""
    with h5py.File(data, "r") as file:
        if n_frames > int(file.attrs["n_frames"]):
            raise SystemExit(f"--frames {n_frames}: the test episodes hold {int(file.attrs['n_frames'])} frames")
        starts = file["test_idx"][:n_episodes]
        pairs = []
        for index, start in enumerate(starts):
            real = file["test_data"][start:start + n_frames]
            actions = file["test_actions"][start:start + n_frames].astype(np.float32)
            sampled = pipeline.generate(frames=real[0], actions=actions, seed=seed + index, n_frames=n_frames).frames[0]
            pairs.append((real, sampled))
    return pairs


def sheet(groups: list[tuple[np.ndarray, ...]], step: int = 2, gap: int = 2) -> np.ndarray:
    """One block of rows per group (real frames, then sampled ones, or any rows of equal length), every
    `step`-th frame, blocks set apart by a white band."""
    def row(frames):
        return np.concatenate([np.pad(f, ((0, gap), (0, gap), (0, 0)), constant_values=255) for f in frames[::step]],
                              axis=1)

    blocks = []
    for rows in groups:
        blocks += [row(frames) for frames in rows]
        blocks.append(np.full((3 * gap, blocks[-1].shape[1], 3), 255, np.uint8))
    return np.concatenate(blocks, axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True, help="a pipeline folder (first frame + actions)")
    parser.add_argument("--data", type=Path, required=True, help="the world's .hdf5 file (its test split is used)")
    parser.add_argument("--episodes", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=16, help="frames per rollout (default: 16)")
    args = parser.parse_args()
    pipeline = videogpt_core.load_pipeline(args.checkpoint, device="cpu", threads=1)
    image = sheet(rollout_rows(pipeline, args.data, args.episodes, args.seed, args.frames))
    out = args.checkpoint / "ROLLOUTS.png"
    Image.fromarray(image).resize((image.shape[1] * 2, image.shape[0] * 2), Image.NEAREST).save(out, optimize=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

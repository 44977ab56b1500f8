"""Does a ViZDoom codec keep the turns? Its reconstructions of real test clips scored as a world model's rollouts
are: the fraction of turning steps whose frames shift the way the turn button says, beside the real frames'.
A prior trained on a codec's codes can follow the turn buttons no better than the codec's own reconstructions do.

    python docs/worlds/codec_turns.py --codec checkpoints/vizdoom/vqvae [--codec ...] [--clips 32 --frames 8]

Clips: the first frames of the first test episodes (seeds never trained on), encoded as clips and, for a
time-causal codec, each frame encoded alone (what a world model's given frame is). Prints one line per codec.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import h5py
import numpy as np
import torch

from videogpt_core.data.transforms import from_model_video, to_model_video
from videogpt_core.evaluation.metrics import psnr_per_frame
from videogpt_core.evaluation.vizdoom_world import horizontal_shifts, turn_agreement, turn_signs
from videogpt_core.models.checkpoints import load_vqvae


def first_test_clips(data: Path, n_clips: int, n_frames: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(frames (N, T, H, W, 3) uint8, actions (N, T, A), action names) of the first test episodes."""
    with h5py.File(data, "r") as file:
        names = json.loads(file.attrs["action_names"])
        starts = file["test_idx"][:n_clips]
        frames = np.stack([file["test_data"][s:s + n_frames] for s in starts])
        actions = np.stack([file["test_actions"][s:s + n_frames] for s in starts])
    return frames, actions, names


@torch.no_grad()
def reconstruct(codec, frames: np.ndarray) -> np.ndarray:
    video = torch.stack([to_model_video(clip) for clip in frames])
    return from_model_video(codec.decode(codec.encode(video)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--codec", action="append", required=True, help="a VQ-VAE folder (repeat for more)")
    parser.add_argument("--data", type=Path, default=Path("data/vizdoom/vizdoom.hdf5"))
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--frames", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    frames, actions, names = first_test_clips(args.data, args.clips, args.frames)
    turning = turn_signs(actions, names)[:, 1:] != 0
    real = turn_agreement(frames, actions, names)
    print(f"real frames: turn agreement {real['turn_agreement']:.1%} over {real['turn_steps']} turning steps, "
          f"|shift| {np.abs(horizontal_shifts(frames)[turning]).mean():.2f} px")
    for folder in args.codec:
        codec = load_vqvae(folder).float().eval()
        clip = reconstruct(codec, frames)
        alone = np.concatenate([reconstruct(codec, frames[:, t:t + 1]) for t in range(args.frames)], axis=1) \
            if codec.config.causal else None
        psnr = psnr_per_frame(*(torch.stack([to_model_video(c) for c in video]) for video in (frames, clip))).mean()
        alone_text = f" / {turn_agreement(alone, actions, names)['turn_agreement']:.1%} each frame alone" \
            if alone is not None else ""
        print(f"{folder}: turn agreement {turn_agreement(clip, actions, names)['turn_agreement']:.1%} as clips"
              f"{alone_text}, |shift| {np.abs(horizontal_shifts(clip)[turning]).mean():.2f} px, PSNR {psnr:.2f} dB")


if __name__ == "__main__":
    main()

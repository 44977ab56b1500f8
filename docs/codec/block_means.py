"""The baseline beside a 4x4x4 codec's PSNR: keep only the mean colour of every 4x4x4 block (no learning, 24
bits a block against the codec's 10 bits a code) and score it as `videogpt reconstruct` scores a codec (clip
resized and centre-cropped, mean of the per-frame PSNR). Default clips: the held-out videos of the general
codec's card, as shipped in the gradio package.

    python docs/codec/block_means.py [CLIP ...] [--resolution 64]
"""
import argparse
import os

import numpy as np
import torch
import torch.nn.functional as F

from videogpt_core.reconstruct import _psnr_per_frame, prepare_clip
from videogpt_core.reconstruct_cli import read_clip

BLOCK = 4  # frames and pixels a side, as the codec's downsampling


def block_means(clip: np.ndarray) -> np.ndarray:
    """uint8 (T, H, W, 3) -> each 4x4x4 block filled with its mean colour (a last partial block in time repeats
    the clip's last frame)."""
    pad = (-len(clip)) % BLOCK
    padded = np.concatenate([clip, np.repeat(clip[-1:], pad, axis=0)])
    video = torch.from_numpy(padded).double().permute(3, 0, 1, 2)[None]  # (1, 3, T, H, W)
    means = F.interpolate(F.avg_pool3d(video, BLOCK), scale_factor=BLOCK, mode="nearest")
    return means[0].permute(1, 2, 3, 0)[: len(clip)].round().clamp(0, 255).byte().numpy()


def main() -> None:
    import gradio

    videos = os.path.join(os.path.dirname(gradio.__file__), "media_assets", "videos")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clips", nargs="*", default=[os.path.join(videos, n) for n in ("a.mp4", "b.mp4", "world.mp4")])
    parser.add_argument("--resolution", type=int, default=64)
    args = parser.parse_args()
    scores = []
    for path in args.clips:
        clip = prepare_clip(read_clip(path, 0, None)[0], args.resolution)
        scores.append(float(np.mean(_psnr_per_frame(clip, block_means(clip)))))
        print(f"{os.path.basename(path)}: {len(clip)} frames, block means {scores[-1]:.2f} dB")
    print(f"mean of the {len(scores)} clips: {np.mean(scores):.2f} dB")


if __name__ == "__main__":
    main()

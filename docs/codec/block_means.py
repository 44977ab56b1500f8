"""The baseline beside a codec's PSNR: keep only the mean colour of every block of its latent grid (no learning,
24 bits a block against a 1024-code codec's 10 bits a code; videogpt_core/codecs/codec_baseline.py) and score it as
`videogpt reconstruct` scores a codec (clip resized and centre-cropped, mean of the per-frame PSNR). Default
clips: the held-out videos of the general codec's card, as shipped in the gradio package.

    python docs/codec/block_means.py [CLIP ...] [--resolution 64] [--downsample 4 4 4]
"""
import argparse
import os

import numpy as np

from videogpt_core.cli.reconstruct import read_clip
from videogpt_core.codecs.codec_baseline import block_means
from videogpt_core.codecs.reconstruct import _psnr_per_frame, prepare_clip


def main() -> None:
    import gradio

    videos = os.path.join(os.path.dirname(gradio.__file__), "media_assets", "videos")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clips", nargs="*", default=[os.path.join(videos, n) for n in ("a.mp4", "b.mp4", "world.mp4")])
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--downsample", type=int, nargs=3, default=(4, 4, 4), metavar=("T", "H", "W"),
                        help="the latent grid's block: frames, pixels high, pixels wide (default 4 4 4)")
    args = parser.parse_args()
    scores = []
    for path in args.clips:
        clip = prepare_clip(read_clip(path, 0, None)[0], args.resolution)
        scores.append(float(np.mean(_psnr_per_frame(clip, block_means(clip, tuple(args.downsample))))))
        print(f"{os.path.basename(path)}: {len(clip)} frames, block means {scores[-1]:.2f} dB")
    print(f"mean of the {len(scores)} clips: {np.mean(scores):.2f} dB")


if __name__ == "__main__":
    main()

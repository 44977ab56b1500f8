"""A codec against block means as contrast falls: test clips of a data set with every pixel mapped to
x * scale + offset (darker and flatter), scored as `videogpt reconstruct` scores a clip. Uses a data set's test
split (e.g. the mixture's), never the held-out videos.

    python docs/codec/low_contrast.py --checkpoint checkpoints/general-codec-4x4x4 --data data/mixture/mixture.hdf5
"""
import argparse

import h5py
import numpy as np

from videogpt_core.codecs.reconstruct import compare_codecs, load_codec

# (scale, offset): full contrast, then darker and flatter (offset keeps the mean near a dim grey).
LEVELS = [(1.0, 0), (0.5, 20), (0.25, 40), (0.12, 50)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", required=True, help="an .hdf5 file of `videogpt make-dataset` (its test split)")
    parser.add_argument("--episodes", type=int, default=8, help="test episodes scored (every third of the first)")
    parser.add_argument("--frames", type=int, default=16, help="frames scored from the start of each episode")
    args = parser.parse_args()
    codec = load_codec(args.checkpoint)
    with h5py.File(args.data, "r") as f:
        starts = f["test_idx"][::3][: args.episodes]
        clips = [f["test_data"][start: start + args.frames] for start in starts]
    for scale, offset in LEVELS:
        scores = []
        for clip in clips:
            flat = np.clip(clip.astype(np.float64) * scale + offset, 0, 255).round().astype(np.uint8)
            result = compare_codecs([codec], flat, resolution=clip.shape[1])[1][0]
            scores.append((result.psnr, result.baseline_psnr))
        codec_psnr, baseline_psnr = np.mean(scores, axis=0)
        print(f"x * {scale} + {offset}: codec {codec_psnr:.2f} dB, block means {baseline_psnr:.2f} dB")


if __name__ == "__main__":
    main()

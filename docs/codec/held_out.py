"""Codecs on the held-out real videos (gradio's media_assets: never trained or tuned on), scored as
`videogpt reconstruct` scores them: each clip resized and centre-cropped, reconstructed window by window, the mean
of the per-frame PSNR, beside the block-mean baseline of the codec's own latent grid. Prints one row per clip and
codec and the mean over clips; --json writes them.

    python docs/codec/held_out.py --checkpoint checkpoints/general-codec-4x4x4 [--checkpoint ...] [--resolution 64]
"""
import argparse
import json
import os

import numpy as np
import torch

from videogpt_core.cli.reconstruct import read_clip
from videogpt_core.codecs.reconstruct import load_codec, prepare_clip, reconstruct_clip

CLIPS = ("a.mp4", "b.mp4", "world.mp4")  # b.avi and muted_b.mp4 are b.mp4 again


def main() -> None:
    import gradio

    videos = os.path.join(os.path.dirname(gradio.__file__), "media_assets", "videos")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", action="append", required=True, help="a codec folder (repeat for more)")
    parser.add_argument("--clips", nargs="*", default=[os.path.join(videos, name) for name in CLIPS])
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None, help="also write the rows and means here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clips = {os.path.basename(path): prepare_clip(read_clip(path, 0, None)[0], args.resolution) for path in args.clips}
    report = {"resolution": args.resolution, "codecs": []}
    for folder in args.checkpoint:
        codec = load_codec(folder)
        rows = []
        for name, clip in clips.items():
            result = reconstruct_clip(codec, clip)
            rows.append({"clip": name, "frames": len(clip), "psnr": round(float(np.mean(result.psnr_per_frame)), 3),
                         "baseline_psnr": round(result.baseline_psnr, 3), "ssim": round(result.ssim, 4),
                         "codes_used": int(np.unique(result.codes).size)})
            print(f"{codec.name:28s} {name:10s} {len(clip):4d} frames  {rows[-1]['psnr']:6.2f} dB  "
                  f"(block means {rows[-1]['baseline_psnr']:6.2f})  SSIM {rows[-1]['ssim']:.3f}  "
                  f"{rows[-1]['codes_used']} of {codec.vqvae.n_codes} codes", flush=True)
        mean = {key: round(float(np.mean([row[key] for row in rows])), 3) for key in ("psnr", "baseline_psnr")}
        print(f"{codec.name:28s} mean of {len(rows)} clips: {mean['psnr']:.2f} dB (block means "
              f"{mean['baseline_psnr']:.2f}, margin {mean['psnr'] - mean['baseline_psnr']:+.2f} dB)")
        report["codecs"].append({"checkpoint": str(folder), "n_codes": codec.vqvae.n_codes,
                                 "downsample": list(codec.downsample), "clips": rows, "mean": mean})
    if args.json:
        with open(args.json, "w") as file:
            json.dump(report, file, indent=1)


if __name__ == "__main__":
    main()

"""`videogpt reconstruct INPUT --checkpoint DIR [--checkpoint DIR2 ...] --out OUT.mp4`: one video through
several codecs, written side by side, with one JSON object of scores on stdout."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from videogpt_core.codecs.reconstruct import MAX_FRAMES, compare_codecs, load_codec
from videogpt_core.models.devices import resolve_device

DEFAULT_FPS = 10.0
OUTPUT_SUFFIXES = (".mp4", ".gif")


def read_clip(path: str | Path, start: int = 0, n_frames: int | None = None, max_frames: int = MAX_FRAMES):
    """(uint8 frames (T, H, W, 3), fps) of `path` from frame `start`: `n_frames` of them, or the whole rest of
    the clip when it has at most `max_frames` (a longer one is refused, so a long film is never decoded whole)."""
    from videogpt_core.io.video_io import read_video, video_metadata

    if start < 0:
        raise ValueError(f"--start must be >= 0, got {start}")
    if n_frames is not None and not 2 <= n_frames <= max_frames:
        raise ValueError(f"--frames must be between 2 and --max-frames ({max_frames}), got {n_frames}")
    frames = read_video(path, max_frames=n_frames or max_frames + 1, start_frame=start)
    if n_frames is None and len(frames) > max_frames:
        raise ValueError(f"{path} has more than {max_frames} frames from frame {start} on; reconstruct a span with "
                         f"--start S --frames N (N <= {max_frames}), or raise --max-frames")
    try:
        fps = video_metadata(path).fps or DEFAULT_FPS
    except ValueError:
        fps = DEFAULT_FPS
    return frames, fps


def _run_reconstruct(args: argparse.Namespace) -> int:
    from videogpt_core.codecs.comparison_video import side_by_side
    from videogpt_core.io.video_io import write_gif, write_mp4

    out = Path(args.out)
    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ValueError(f"--out must end in {' or '.join(OUTPUT_SUFFIXES)}, got {out.name!r}")
    device = resolve_device(args.device)
    codecs = [load_codec(folder, device) for folder in args.checkpoint]
    names = [codec.name for codec in codecs]
    for index, codec in enumerate(codecs):  # two folders of the same name get numbered titles
        if names.count(codec.name) > 1:
            codec.name = f"{codec.name}-{index + 1}"
    frames, fps = read_clip(args.input, args.start, args.frames, args.max_frames)
    resolution = args.resolution or codecs[0].vqvae.config.resolution
    clip, results, report = compare_codecs(codecs, frames, resolution, device)
    scale = args.scale or max(1, 256 // resolution)
    titles = [f"{result.name} {result.psnr:.1f}dB" for result in results]
    grid = side_by_side(clip, [result.frames for result in results], titles, scale=scale,
                        heatmaps=not args.no_heatmaps)
    (write_gif if out.suffix.lower() == ".gif" else write_mp4)(out, grid, fps)
    for summary, codec in zip(report["codecs"], codecs):
        summary["trained_resolution"] = codec.vqvae.config.resolution
        summary["trained_sequence_length"] = codec.vqvae.config.sequence_length
    print(json.dumps({"input": str(args.input), "out": str(out), "fps": fps, **report}))
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `reconstruct` on the `videogpt` command line."""
    parser = subparsers.add_parser(
        "reconstruct",
        help="put a video through one or more VQ-VAE codecs: side-by-side video + JSON scores",
        description=(
            "Resize and centre-crop INPUT (any video ffmpeg reads, or a GIF) to RESOLUTION, reconstruct it with "
            "each codec (window by window of its training length), write OUT with the original and one column "
            "per codec (plus error heatmaps), and print one JSON object: per codec psnr (mean dB over frames), "
            "psnr_per_frame, ssim, bits (latents x log2 codebook size), raw_bits, compression_ratio, "
            "codebook_usage (distinct codes on this clip), code_stability (share of latent positions "
            "keeping their code from one latent slice to the next), and baseline_psnr / baseline_bits: keeping "
            "only the mean colour of each block of the codec's latent grid (24 bits a block), the figure a "
            "codec has to beat."
        ),
    )
    parser.add_argument("input", help="the video file")
    parser.add_argument("--checkpoint", action="append", required=True,
                        help="a VQ-VAE folder, a pipeline folder with vqvae/, or a training run with model/; repeat "
                             "for several codecs")
    parser.add_argument("--out", required=True, help="the side-by-side video, .mp4 or .gif")
    parser.add_argument("--resolution", type=int, default=None,
                        help="frame size the clip is cropped to (default: the first codec's training size); the codecs "
                             "are fully convolutional, so e.g. 64 px models also run at 128")
    parser.add_argument("--start", type=int, default=0, help="first frame to use (default: 0)")
    parser.add_argument("--frames", type=int, default=None,
                        help="number of frames to use (default: the whole clip, if it has at most --max-frames)")
    parser.add_argument("--max-frames", type=int, default=MAX_FRAMES,
                        help=f"refuse longer clips unless --frames picks a span (default: {MAX_FRAMES})")
    parser.add_argument("--scale", type=int, default=None,
                        help="integer upscaling of the written video (default: tiles of about 256 px)")
    parser.add_argument("--no-heatmaps", action="store_true", help="leave out the row of error heatmaps")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.set_defaults(func=_run_reconstruct)

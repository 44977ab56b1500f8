"""`videogpt sample`: generate videos from a pipeline folder and write them as H.264 mp4 and/or gif.

Conditions come from files: a first frame (image) or first frames (video), a class name and an actions file
with one row per output frame of as many values as the model takes (2 for the pusher, 3 for vizdoom, 4 for
fetchpush). Several samples are tiled side by side in one video.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

from videogpt_core.inference.sampling_options import SamplingOptions
from videogpt_core.io.video_io import VIDEO_EXTENSIONS, read_image, read_video, write_gif, write_mp4

OUTPUT_WRITERS = {".mp4": write_mp4, ".gif": write_gif}
# Models differ in their action columns (`action_dim` in prior/config.json): the shipped ones, in order.
ACTIONS_HELP = ("one row per output frame of as many values as the model takes: checkpoints/pusher 2 (dx dy), "
                "checkpoints/vizdoom 3 (TURN_LEFT TURN_RIGHT MOVE_FORWARD, 0 or 1 each), checkpoints/fetchpush 4 "
                "(dx dy dz gripper); each within the model's action_range (prior/config.json)")
MAX_OUTPUT_SIDE = 4096  # pixels; checked before sampling, so a large --scale cannot fail after the work


def read_frames(path: str | Path, max_frames: int) -> np.ndarray:
    """An image as uint8 (H, W, 3), or the first `max_frames` frames of a video (or GIF) as (K, H, W, 3)."""
    path = Path(path)
    if path.suffix.lower() in VIDEO_EXTENSIONS:
        return read_video(path, max_frames=max_frames)
    return read_image(path)


def load_actions(path: str | Path) -> np.ndarray:
    """Actions (n_frames, action_dim) float32 from .npy, or .txt / .csv with one row per frame
    ("1 0 0" or "1,0,0"; blank lines and lines starting with # are skipped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"actions file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            actions = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as error:
            raise ValueError(f"{path}: not a readable .npy array ({error})") from None
    elif suffix in (".txt", ".csv"):
        rows = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                rows.append([float(value) for value in line.replace(",", " ").split()])
            except ValueError:
                raise ValueError(f"{path}, line {number}: {line!r} is not a row of numbers like '2.5 0'") from None
            if len(rows[-1]) != len(rows[0]):
                raise ValueError(f"{path}, line {number}: {len(rows[-1])} values, but the first row has "
                                 f"{len(rows[0])}; give the same number of values on every row")
        if not rows:
            raise ValueError(f"{path}: no action rows; write {ACTIONS_HELP}")
        actions = np.asarray(rows)
    else:
        raise ValueError(f"{path}: actions must be a .npy array or a .txt / .csv file with one row per frame")
    if actions.ndim == 1:
        actions = actions[:, None]  # one value per frame: a one-dimensional action
    if actions.ndim != 2 or not np.issubdtype(actions.dtype, np.number):
        raise ValueError(f"{path}: actions must be a table of numbers (n_frames, action_dim); "
                         f"got {actions.dtype} {actions.shape}")
    return actions.astype(np.float32)


def tile_side_by_side(frames: np.ndarray) -> np.ndarray:
    """(n, T, H, W, 3) samples -> (T, H, n * W, 3), sample 0 on the left."""
    n, t, h, w, c = frames.shape
    return np.ascontiguousarray(frames.transpose(1, 2, 0, 3, 4).reshape(t, h, n * w, c))


def _output_paths(args: argparse.Namespace) -> list[Path]:
    paths = [Path(p) for p in (args.out, args.gif) if p]
    if not paths:
        raise ValueError("nothing to write: give --out video.mp4 and/or --gif video.gif")
    for path in paths:
        if path.suffix.lower() not in OUTPUT_WRITERS:
            raise ValueError(f"{path}: unsupported output type; use a .mp4 or .gif file name")
    return paths


def _check_numbers(args: argparse.Namespace) -> None:
    if args.scale < 1:
        raise ValueError(f"--scale must be a whole number >= 1, got {args.scale}")
    if not math.isfinite(args.fps) or args.fps <= 0:
        raise ValueError(f"--fps must be a finite number > 0, got {args.fps}")
    if args.seed is not None and not 0 <= args.seed <= 2**63 - 1:
        raise ValueError(f"--seed must be a whole number between 0 and {2**63 - 1}, got {args.seed}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")


def _check_output_size(args: argparse.Namespace, resolution: int) -> None:
    """The tiled, upscaled frame must fit, checked once the model's frame size is known (before sampling)."""
    height, width = resolution * args.scale, max(1, args.n) * resolution * args.scale
    if max(height, width) > MAX_OUTPUT_SIDE:
        largest = max(1, MAX_OUTPUT_SIDE // (max(1, args.n) * resolution))
        raise ValueError(f"--scale {args.scale} makes {width}x{height} frames ({args.n} sample(s) of {resolution}x"
                         f"{resolution} side by side); at most {MAX_OUTPUT_SIDE} pixels a side: use --scale "
                         f"{largest} or less")


def run_sample(args: argparse.Namespace) -> int:
    from videogpt_core.inference.pipeline import load_pipeline

    paths = _output_paths(args)
    _check_numbers(args)
    started = time.perf_counter()
    pipeline = load_pipeline(args.checkpoint, device=args.device, threads=args.threads, compile=args.compile,
                             quantize=args.quantize)
    loaded = time.perf_counter()
    _check_output_size(args, pipeline.resolution)

    frames = None if args.frame is None else read_frames(args.frame, pipeline.sequence_length)
    actions = None if args.actions is None else load_actions(args.actions)
    n_frames = args.n_frames
    if n_frames is None and actions is not None:
        n_frames = actions.shape[0]  # one action row per output frame sets the length
    # Chosen here rather than in the pipeline so it is on screen before a long run starts.
    seed = args.seed if args.seed is not None else int(np.random.default_rng().integers(0, 2**31 - 1))
    options = dict(n=args.n, frames=frames, label=args.label, actions=actions,
                   options=SamplingOptions.from_arguments(args), seed=seed, n_frames=n_frames)
    print(f"seed {seed}", flush=True)

    begin = time.perf_counter()
    first_slice = last = None
    for last in pipeline.stream(**options):
        if first_slice is None:
            first_slice = time.perf_counter()
        if not args.quiet:
            print(f"\r  {last.tokens_done}/{last.tokens_total} tokens, {last.frames.shape[1]} frames",
                  end="", file=sys.stderr, flush=True)
    finished = time.perf_counter()
    if not args.quiet:
        print(file=sys.stderr)

    video = tile_side_by_side(last.frames)
    for path in paths:
        OUTPUT_WRITERS[path.suffix.lower()](path, video, fps=args.fps, scale=args.scale)
        print(f"wrote {path} ({video.shape[0]} frames, {video.shape[2] * args.scale}x"
              f"{video.shape[1] * args.scale})")

    # Sampling time includes the VQ-VAE decode after every latent slice (what a viewer waits for).
    tokens = last.tokens_total * args.n
    sampling = finished - begin
    print(f"seed {last.seed}: {args.n} sample(s) of {last.frames.shape[1]} frames, {tokens} tokens sampled and "
          f"decoded in {sampling:.2f} s ({1000 * sampling / last.tokens_total:.1f} ms per token step, "
          f"{tokens / sampling:.0f} tokens/s); first slice after {first_slice - begin:.2f} s; "
          f"model load {loaded - started:.2f} s; device {pipeline.device}")
    return 0


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "sample", help="generate videos from a trained pipeline and write mp4 / gif",
        description="Sample videos from a pipeline folder (vqvae/ + prior/). Conditioning: --frame (a first "
        "frame image or a video; a video with at least a latent slice of frames is continued: video "
        "prediction), --label (class name or index) and --actions (a file of " + ACTIONS_HELP + "). "
        "Videos longer than the model's window (--n-frames) continue with a sliding window. The seed is "
        "printed, so a sample can be reproduced with --seed.",
        epilog="example: videogpt sample --checkpoint checkpoints/pusher --frame start.png "
        "--actions moves.txt --out pusher.mp4 --gif pusher.gif --n 4 --seed 1")
    parser.add_argument("--checkpoint", required=True, metavar="DIR", help="pipeline folder holding vqvae/ and prior/")
    inputs = parser.add_argument_group("conditioning")
    inputs.add_argument("--frame", metavar="IMG_OR_VIDEO", help="first frame (image) or first frames (video), any size")
    inputs.add_argument("--label", metavar="NAME", help="class name (or index) for a class-conditional model")
    inputs.add_argument("--actions", metavar="FILE",
                        help="actions as .npy or .txt/.csv: one row per output frame, as many values a row as "
                        "the model takes (see above); the row count sets --n-frames when that is not given")
    output = parser.add_argument_group("output")
    output.add_argument("--out", metavar="VIDEO.mp4", help="H.264 mp4 to write (a .gif name writes a gif)")
    output.add_argument("--gif", metavar="VIDEO.gif", help="also (or only) write a looping gif")
    output.add_argument("--n", type=int, default=1, metavar="N", help="number of samples, tiled side by side (1)")
    output.add_argument("--n-frames", type=int, default=None, metavar="N",
                        help="frames to generate (default: the model's sequence length)")
    output.add_argument("--scale", type=int, default=4, metavar="S",
                        help="integer nearest-neighbour upscale of the output (4)")
    output.add_argument("--fps", type=float, default=8.0, help="frames per second of the output (8)")
    sampling = parser.add_argument_group("sampling")
    SamplingOptions.add_arguments(sampling)
    sampling.add_argument("--seed", type=int, default=None, help="random seed (default: a fresh one, printed)")
    hardware = parser.add_argument_group("hardware")
    hardware.add_argument("--device", default=None, metavar="DEV", help="cpu or cuda (default: cuda when available)")
    hardware.add_argument("--threads", type=int, default=None, metavar="N", help="torch CPU threads")
    hardware.add_argument("--compile", action="store_true",
                          help="compile the decode step (torch.compile; CUDA graphs on a GPU)")
    hardware.add_argument("--quantize", default=None, metavar="int8",
                          help="int8 prior weights in the decode step (CPU only): faster at batch 1, logits "
                               "within about 2%% of float32")
    parser.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    parser.set_defaults(func=run_sample)

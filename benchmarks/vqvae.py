"""VQ-VAE throughput: encode (video -> codes) and decode (codes -> video) in clips/s and frames/s, on random
weights at the demo and the reference BAIR sizes, or on trained codecs at any frame size they run at.

    python -m benchmarks.vqvae [--sizes demo,bair] [--batch 1,4] [--device cpu|cuda] [--threads N]
                               [--amp none|bf16|fp16] [--json out.json]
    python -m benchmarks.vqvae --checkpoint checkpoints/general-codec-4x4x4 --resolution 128 --batch 1
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import (AMP_DTYPES, SIZES, add_common_arguments, autocast, build_models, measure,
                               positive_ints, report, setup_device)
from videogpt_core.codecs.reconstruct import load_codec
from videogpt_core.models.vqvae import VQVAE

MODULE = "benchmarks.vqvae"
COLUMNS = [("size", "size"), ("resolution", "px"), ("batch", "batch"), ("direction", "direction"), ("ms_per_batch", "ms/batch"),
           ("clips_per_s", "clips/s"), ("frames_per_s", "frames/s"), ("runs", "runs")]


def benchmark(size_name: str, batch: int, device: torch.device, amp: str, repeats: int,
              vqvae: VQVAE | None = None, resolution: int | None = None) -> list[dict[str, Any]]:
    """Rows for a random-weight model of `size_name`, or for the given trained `vqvae` (named `size_name`)."""
    vqvae = vqvae if vqvae is not None else build_models(SIZES[size_name], device=device)[0]
    cfg = vqvae.config
    resolution = resolution or cfg.resolution
    generator = torch.Generator().manual_seed(0)
    video = (torch.rand(batch, 3, cfg.sequence_length, resolution, resolution, generator=generator)
             - 0.5).to(device)
    latent_shape = vqvae.latent_shape_for(cfg.sequence_length, resolution, resolution)
    codes = torch.randint(0, cfg.n_codes, (batch, *latent_shape), generator=generator).to(device)

    def encode():
        with torch.no_grad(), autocast(device, amp):
            vqvae.encode(video)

    def decode():
        with torch.no_grad(), autocast(device, amp):
            vqvae.decode(codes)

    rows = []
    for direction, run in (("encode", encode), ("decode", decode)):
        timing = measure(run, device, warmup=1, repeats=repeats, slow_s=3.0)
        rows.append(dict(size=size_name, resolution=resolution, batch=batch, direction=direction,
                         ms_per_batch=1000 * timing.median_s,
                         clips_per_s=batch / timing.median_s,
                         frames_per_s=batch * cfg.sequence_length / timing.median_s, runs=len(timing.runs)))
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--batch", type=positive_ints, default=[1, 4], help="comma-separated batch sizes (clips)")
    parser.add_argument("--amp", choices=list(AMP_DTYPES), default="none",
                        help="autocast dtype (the pipeline decodes in bf16 on CPUs with native bf16)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (median); calls over 3 s run once")
    parser.add_argument("--checkpoint", type=Path, action="append", default=None, metavar="DIR",
                        help="time this trained codec (a VQ-VAE, pipeline or run folder) instead of --sizes; "
                             "repeatable")
    parser.add_argument("--resolution", type=int, default=None,
                        help="frame size in pixels (default: each model's own)")
    args = parser.parse_args(argv)
    device = setup_device(args.device, args.threads)
    started = time.perf_counter()
    rows = []
    if args.checkpoint:
        for folder in args.checkpoint:
            codec = load_codec(folder, device)
            for batch in args.batch:
                rows += benchmark(codec.name, batch, device, args.amp, args.repeats, codec.vqvae.eval(),
                                  args.resolution)
        notes = [f"{folder}: trained weights" for folder in args.checkpoint]
    else:
        for size in args.sizes:
            for batch in args.batch:
                rows += benchmark(size.name, batch, device, args.amp, args.repeats, resolution=args.resolution)
        notes = [f"{size.name}: VQ-VAE {size.vqvae}; random weights" for size in args.sizes]
    notes += [f"eval mode, autocast: {args.amp}; encode includes the nearest-code search",
              "median of repeats after one warmup call; a first call over 3 s is the only measurement",
              f"benchmark wall time {time.perf_counter() - started:.0f} s"]
    report("VQ-VAE encode / decode throughput", MODULE, device, rows, COLUMNS, notes, args.json,
           extra=dict(settings=dict(sizes=[s.name for s in args.sizes], batch=args.batch, amp=args.amp,
                                    repeats=args.repeats, resolution=args.resolution,
                                    checkpoints=[str(c) for c in args.checkpoint or []])))
    return dict(rows=rows)


if __name__ == "__main__":
    main()

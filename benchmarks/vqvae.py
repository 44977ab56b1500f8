"""VQ-VAE throughput: encode (video -> codes) and decode (codes -> video) in clips/s and frames/s, on random
weights at the demo and the reference BAIR sizes.

    python -m benchmarks.vqvae [--sizes demo,bair] [--batch 1,4] [--device cpu|cuda] [--threads N]
                               [--amp none|bf16|fp16] [--json out.json]
"""
from __future__ import annotations

import argparse
import time
from typing import Any

import torch

from benchmarks.common import (AMP_DTYPES, SIZES, add_common_arguments, autocast, build_models, measure,
                               positive_ints, report, setup_device)

MODULE = "benchmarks.vqvae"
COLUMNS = [("size", "size"), ("batch", "batch"), ("direction", "direction"), ("ms_per_batch", "ms/batch"),
           ("clips_per_s", "clips/s"), ("frames_per_s", "frames/s"), ("runs", "runs")]


def benchmark(size_name: str, batch: int, device: torch.device, amp: str, repeats: int) -> list[dict[str, Any]]:
    vqvae, _ = build_models(SIZES[size_name], device=device)
    cfg = vqvae.config
    generator = torch.Generator().manual_seed(0)
    video = (torch.rand(batch, 3, cfg.sequence_length, cfg.resolution, cfg.resolution, generator=generator)
             - 0.5).to(device)
    codes = torch.randint(0, cfg.n_codes, (batch, *cfg.latent_shape), generator=generator).to(device)

    def encode():
        with torch.no_grad(), autocast(device, amp):
            vqvae.encode(video)

    def decode():
        with torch.no_grad(), autocast(device, amp):
            vqvae.decode(codes)

    rows = []
    for direction, run in (("encode", encode), ("decode", decode)):
        timing = measure(run, device, warmup=1, repeats=repeats, slow_s=3.0)
        rows.append(dict(size=size_name, batch=batch, direction=direction, ms_per_batch=1000 * timing.median_s,
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
    args = parser.parse_args(argv)
    device = setup_device(args.device, args.threads)
    started = time.perf_counter()
    rows = []
    for size in args.sizes:
        for batch in args.batch:
            rows += benchmark(size.name, batch, device, args.amp, args.repeats)
    notes = [f"{size.name}: VQ-VAE {size.vqvae}" for size in args.sizes]
    notes += [f"random weights, eval mode, autocast: {args.amp}; encode includes the nearest-code search",
              "median of repeats after one warmup call; a first call over 3 s is the only measurement",
              f"benchmark wall time {time.perf_counter() - started:.0f} s"]
    report("VQ-VAE encode / decode throughput", MODULE, device, rows, COLUMNS, notes, args.json,
           extra=dict(settings=dict(sizes=[s.name for s in args.sizes], batch=args.batch, amp=args.amp,
                                    repeats=args.repeats)))
    return dict(rows=rows)


if __name__ == "__main__":
    main()

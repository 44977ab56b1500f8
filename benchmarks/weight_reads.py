"""The floor under one-token decoding: the time to read every weight a decode step multiplies by, once.

    python -m benchmarks.weight_reads [--sizes demo,uncond1024,bair] [--threads N] [--repeats 20] [--json out.json]

At batch 1 a decode step is a chain of matrix-vector products, one per Linear layer of the prior's blocks
plus the input projection and the output head, and each weight matrix is read from memory once per token. This harness times exactly
those products (`F.linear` of a batch-1 row with each of the prior's Linear weights, in order) and nothing
else: no attention, no norms, no sampling. No sampler that decodes one token per step in that dtype can be
faster per token than this on the same machine; an exact sampler beats it only by scoring several tokens
per pass (speculative decoding). Random weights (the speed does not depend on them).
"""
from __future__ import annotations

import argparse
import os
import time
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks.common import add_common_arguments, build_models, measure, report, setup_device

MODULE = "benchmarks.weight_reads"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
COLUMNS = [("size", "size"), ("dtype", "weights"), ("megabytes", "MB read"), ("ms_per_pass", "ms/pass"),
           ("gb_per_s", "GB/s"), ("runs", "runs")]


def decode_weights(prior: torch.nn.Module) -> list[torch.Tensor]:
    """The weights one decode step multiplies by: the input projection, every Linear in the blocks and the
    output head (the frame encoder runs once per sample, not per token)."""
    return [module.weight.detach() for name, module in prior.named_modules()
            if isinstance(module, torch.nn.Linear) and name.startswith(("fc_in", "blocks.", "fc_out"))]


def benchmark(size, dtype_name: str, device: torch.device, repeats: int) -> dict[str, Any]:
    _, prior = build_models(size, device=device)
    dtype = DTYPES[dtype_name]
    weights = [weight.to(dtype).contiguous() for weight in decode_weights(prior)]
    inputs = {width: torch.randn(1, width, dtype=dtype, device=device) for width in {w.shape[1] for w in weights}}

    def one_pass():
        for weight in weights:
            F.linear(inputs[weight.shape[1]], weight)

    with torch.no_grad():
        timing = measure(one_pass, device, warmup=3, repeats=repeats)
    megabytes = sum(weight.numel() * weight.element_size() for weight in weights) / 1e6
    return dict(size=size.name, dtype=dtype_name, megabytes=megabytes, ms_per_pass=1000 * timing.median_s,
                gb_per_s=megabytes / 1000 / timing.median_s, runs=len(timing.runs))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, default_sizes="demo,uncond1024,bair")
    parser.add_argument("--dtypes", default="float32,bfloat16",
                        help=f"comma-separated weight dtypes from {', '.join(DTYPES)} (default float32,bfloat16)")
    parser.add_argument("--repeats", type=int, default=20, help="timed passes (median) after three warmup passes")
    args = parser.parse_args(argv)
    dtypes = [name.strip() for name in args.dtypes.split(",") if name.strip()]
    unknown = [name for name in dtypes if name not in DTYPES]
    if unknown:
        parser.error(f"unknown dtype {', '.join(unknown)}; choose from {', '.join(DTYPES)}")
    device = setup_device(args.device, args.threads)
    load_before = os.getloadavg()
    started = time.perf_counter()
    rows = [benchmark(size, dtype, device, args.repeats) for size in args.sizes for dtype in dtypes]
    load_after = os.getloadavg()
    notes = ["one pass = F.linear of one row (batch 1) with each Linear weight of the prior's input projection, "
             "blocks and output head, in order: the weight reads of one decode step, without attention, norms or sampling",
             f"median of {args.repeats} passes after three warmup passes",
             f"load average (1, 5, 15 min) before {tuple(round(v, 2) for v in load_before)}, "
             f"after {tuple(round(v, 2) for v in load_after)}",
             f"benchmark wall time {time.perf_counter() - started:.0f} s"]
    report("weight reads of one batch-1 decode step", MODULE, device, rows, COLUMNS, notes, args.json,
           extra=dict(load_before=load_before, load_after=load_after))
    return dict(rows=rows)


if __name__ == "__main__":
    main()

"""FVD's feature extractor: Inception-I3D clips/s on 16-frame 64x64 uint8 clips, including the protocol's
resize to 224x224 (the cost of every FVD figure: real clips, reconstructions and samples each pass once).

    python -m benchmarks.i3d [--batch 1,4,8] [--device cpu|cuda] [--threads N] [--repeats 3] [--json out.json]

Random weights (the speed does not depend on them, and no weights package is needed); the load average
before and after is part of the report, since this harness is often run on a shared machine.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import measure, positive_ints, report, setup_device
from videogpt_core.fvd.fvd import FVD_FRAMES, FeatureExtractor
from videogpt_core.fvd.i3d import InceptionI3D

MODULE = "benchmarks.i3d"
COLUMNS = [("batch", "batch"), ("ms_per_batch", "ms/batch"), ("clips_per_s", "clips/s"), ("runs", "runs")]


def benchmark(batch: int, device: torch.device, repeats: int) -> dict[str, Any]:
    torch.manual_seed(0)
    extract = FeatureExtractor(InceptionI3D().to(device), batch_size=batch, device=device)
    clips = torch.randint(0, 256, (batch, FVD_FRAMES, 64, 64, 3), dtype=torch.uint8)
    timing = measure(lambda: extract(clips), device, warmup=1, repeats=repeats)
    return dict(batch=batch, ms_per_batch=1000 * timing.median_s, clips_per_s=batch / timing.median_s,
                runs=len(timing.runs))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=positive_ints, default=[1, 4, 8], help="comma-separated batch sizes (clips)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (median) after one warmup call")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT.json", help="also write the JSON here")
    args = parser.parse_args(argv)
    device = setup_device(args.device, args.threads)
    load_before = os.getloadavg()
    started = time.perf_counter()
    rows = [benchmark(batch, device, args.repeats) for batch in args.batch]
    load_after = os.getloadavg()
    notes = [f"{FVD_FRAMES}-frame 64x64 uint8 clips, resized to 224x224 and scaled to [-1, 1] inside the timing; "
             "float32, eval mode, random weights",
             f"median of {args.repeats} runs after one warmup call",
             f"load average (1, 5, 15 min) before {tuple(round(v, 2) for v in load_before)}, "
             f"after {tuple(round(v, 2) for v in load_after)}",
             f"benchmark wall time {time.perf_counter() - started:.0f} s"]
    report("Inception-I3D (FVD features) throughput", MODULE, device, rows, COLUMNS, notes, args.json,
           extra=dict(settings=dict(batch=args.batch, repeats=args.repeats), load_before=load_before,
                      load_after=load_after))
    return dict(rows=rows)


if __name__ == "__main__":
    main()

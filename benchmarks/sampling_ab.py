"""Sampling speed of this tree against another copy of the project, in one process: both pipelines are loaded side
by side (each keeps its own modules) and generate the same greedy video alternately; CPU seconds per generate,
medians, and the load average around the runs (a busy machine slows both alike).

    python -m benchmarks.sampling_ab --baseline /path/to/old/checkout [--model pusher] [--frames 4] [--rounds 7]
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent


def load_from(tree: Path, folder: Path):
    """A pipeline built by the videogpt_core of `tree`; its modules are then forgotten, so another tree's load."""
    sys.path.insert(0, str(tree))
    import videogpt_core  # its package-level load_pipeline: the same name in every layout of the package

    pipeline = videogpt_core.load_pipeline(folder, device="cpu")
    sys.path.remove(str(tree))
    for name in [name for name in sys.modules if name == "videogpt_core" or name.startswith("videogpt_core.")]:
        del sys.modules[name]  # the pipeline keeps its functions' own modules
    return pipeline


def greedy_call(pipeline, inputs: dict, n_frames: int):
    """generate(seed) with top-k 1, in whichever sampling API the pipeline's tree has."""
    if "options" in inspect.signature(pipeline.generate).parameters:
        options = pipeline.generate.__globals__["SamplingOptions"](top_k=1)  # the tree's own class
        return lambda seed: pipeline.generate(**inputs, options=options, seed=seed, n_frames=n_frames)
    return lambda seed: pipeline.generate(**inputs, top_k=1, seed=seed, n_frames=n_frames)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="another checkout of the project")
    parser.add_argument("--model", default="pusher", help="a shipped model (checkpoints/NAME)")
    parser.add_argument("--frames", type=int, default=4, help="frames per generate")
    parser.add_argument("--rounds", type=int, default=7, help="generates per tree, alternated")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    folder = ROOT / "checkpoints" / args.model
    pipelines = {"baseline": load_from(args.baseline.resolve(), folder), "this tree": load_from(ROOT, folder)}
    cfg = pipelines["this tree"].config
    from PIL import Image

    inputs = {}
    if cfg.n_cond_frames:
        image = Image.open(ROOT / "demo" / "examples" / f"{args.model}-test-0.png").convert("RGB")
        inputs["frames"] = np.asarray(image)
    if cfg.n_classes:
        inputs["label"] = 0
    if cfg.action_dim:
        inputs["actions"] = np.zeros((args.frames, cfg.action_dim), np.float32)
    calls = {name: greedy_call(pipeline, inputs, args.frames) for name, pipeline in pipelines.items()}
    for call in calls.values():
        call(0)  # warm-up
    seconds = {name: [] for name in calls}
    load_before = os.getloadavg()
    for round_index in range(args.rounds):
        order = list(calls) if round_index % 2 == 0 else list(calls)[::-1]
        for name in order:
            started = time.process_time()
            calls[name](round_index + 1)
            seconds[name].append(time.process_time() - started)
    same = torch.equal(calls["baseline"](99).codes, calls["this tree"](99).codes)
    result = dict(model=args.model, frames=args.frames, rounds=args.rounds, cpu_s=seconds,
                  median_cpu_s={name: statistics.median(runs) for name, runs in seconds.items()},
                  greedy_codes_equal=same, load_average_before=load_before, load_average_after=os.getloadavg())
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()

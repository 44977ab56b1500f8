"""Does a Play step cost the same late in a play as early on? Seconds per step over one long play.

    python -m benchmarks.play_step_cost --checkpoint checkpoints/vizdoom --steps 210 --plays 5 --threads 1

Plays one world from a shipped start frame with keys drawn at random (every key of the world's controls, held
for one step), the Play tab's session and defaults, and takes the median step time of steps 1-10 and of the
last 11 steps (200-210 for --steps 210) and their ratio. A few slow seconds of a shared machine can double an
11-step median, so the play is repeated `--plays` times (play i: seed i) and the report gives each play's
figures and their medians, with the load average before and after. Steps are the session's own timings
(sampling and decoding, not the browser).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

import videogpt_core
from videogpt_core.data.worlds.controls import controls_for, world_of_model
from videogpt_core.inference.decode_step import DECODE_MODES
from videogpt_core.inference.play import PlaySession
from videogpt_core.io.video_io import read_image

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "vizdoom")
    parser.add_argument("--steps", type=int, default=210)
    parser.add_argument("--world", default=None,
                        help="the world whose example frame starts the play (default: from the checkpoint's name)")
    parser.add_argument("--plays", type=int, default=5, help="plays of --steps steps each (default: 5)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--compile", action="store_true", help="the compiled decode step (as the served demo)")
    parser.add_argument("--decode-mode", choices=DECODE_MODES, default=None,
                        help="how the decode step runs (default: what --compile chooses: for a world model on a CPU, "
                             "whole_cache)")
    parser.add_argument("--context-slices", type=int, default=None,
                        help="latent slices a full window keeps when it slides (default: the Play tab's)")
    parser.add_argument("--draft-tokens", type=int, default=None,
                        help="exact speculative sampling, K codes per verify pass (default: one code per step)")
    parser.add_argument("--draft", default="previous-slice", help="what proposes the codes (with --draft-tokens)")
    args = parser.parse_args(argv)
    if args.steps < 22:
        raise SystemExit("--steps must be at least 22 (two groups of 11 steps)")
    if args.plays < 1:
        raise SystemExit("--plays must be at least 1")
    pipeline = videogpt_core.load_pipeline(args.checkpoint, device="cpu", threads=args.threads,
                                           compile=args.compile, decode_mode=args.decode_mode,
                                           draft_tokens=args.draft_tokens, draft=args.draft)
    pipeline.warm_up((1,))
    world = world_of_model(args.world or args.checkpoint.name)
    controls = controls_for(world, pipeline.config.action_dim)
    start = read_image(ROOT / "demo" / "examples" / f"{world}-test-0.png")
    keys = [control.name for control in controls.controls]
    load_before = os.getloadavg()[0]
    plays = []
    for play in range(args.plays):
        session = PlaySession(pipeline, start, seed=play, context_slices=args.context_slices)
        rng = np.random.default_rng(play)
        seconds = []
        for _ in range(args.steps):
            held = [keys[int(rng.integers(len(keys)))]]
            seconds.append(session.step(controls.row(held)).seconds)
        early, late = float(np.median(seconds[:10])), float(np.median(seconds[-11:]))
        plays.append({"early_s": round(early, 4), "late_s": round(late, 4), "late_over_early": round(late / early, 3),
                      "mean_s": round(float(np.mean(seconds)), 4)})
    median = {key: float(np.median([play[key] for play in plays])) for key in plays[0]}
    report = {"checkpoint": str(args.checkpoint), "steps": args.steps, "plays": args.plays, "threads": args.threads,
              "compiled": args.compile, "decode_mode": pipeline.decode_step.mode,
              "context_slices": session.context_slices, "draft_tokens": args.draft_tokens,
              "draft": args.draft if args.draft_tokens else None,
              "median_s_steps_1_10": round(median["early_s"], 4),
              f"median_s_steps_{args.steps - 10}_{args.steps}": round(median["late_s"], 4),
              "late_over_early": round(median["late_over_early"], 3),  # the median of the plays' ratios
              "mean_s_all_steps": round(median["mean_s"], 4),  # a held key's frames/s is about 1 / this
              "each_play": plays,
              "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)]}
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()

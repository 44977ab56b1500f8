"""Play steps on the shipped pusher: seconds per step and how far the world drifts, per context length.

    python benchmarks/play_context.py [--episodes 6] [--frames 32]

Each test episode (seeds from the test split) is replayed in a PlaySession from its first frame with the
recorded actions, one latent slice per step, with 1 and with 3 (the window less one) past slices of
context; prints the median step time and the PSNR of frames 4..T-1 against the real episode.
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np

import videogpt_core
from videogpt_core.data.worlds import get_world, split_seeds
from videogpt_core.evaluation.metrics import psnr_from_mse
from videogpt_core.inference.play import PlaySession


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="checkpoints/pusher")
    parser.add_argument("--episodes", type=int, default=6)
    parser.add_argument("--frames", type=int, default=32)
    args = parser.parse_args()
    pipeline = videogpt_core.load_pipeline(args.checkpoint, device="cpu", threads=1, compile=True)
    pipeline.warm_up((1,))
    world = get_world("pusher")
    rows = []
    for context in (1, pipeline.config.latent_shape[0] - 1):
        scores, seconds = [], []
        for seed in split_seeds("test", args.episodes):
            episode = world.generate(int(seed), args.frames)
            session = PlaySession(pipeline, episode.frames[0], context_slices=context, seed=int(seed))
            while len(session.frames) < args.frames:
                done = len(session.frames)
                seconds.append(session.step(episode.actions[done:done + session.next_step_frames]).seconds)
            error = session.frames[4:args.frames].astype(np.float64) - episode.frames[4:args.frames]
            scores.append(float(psnr_from_mse(np.mean(error**2), data_range=255.0)))
        rows.append(dict(context_slices=context, median_step_s=float(np.median(seconds)),
                         rollout_psnr_db=float(np.mean(scores)), episodes=args.episodes, frames=args.frames))
        print(json.dumps(rows[-1]), flush=True)
    print(json.dumps(dict(rows=rows, load_average=os.getloadavg(), cpus=os.cpu_count())))


if __name__ == "__main__":
    main()

"""Does a ViZDoom play stay a ViZDoom scene? Play a model from the shipped start frames and replay the same keys
in the simulator; score every step's frame against the simulator's, beside the start frame held.

    python -m benchmarks.play_vs_simulator --checkpoint checkpoints/vizdoom --plays 10 --presses 30

Each play starts from one of the demo's ViZDoom start frames (demo/examples/vizdoom-test-K.png, the first
frames of the test seeds, in turn) and presses `--presses` keys drawn from turning and walking (those of left,
right, up, down the scenario has; each key for a run of 1-6 presses, seed = the play's number), one key press
per Play step, with the Play tab's session and default sampling. The simulator then replays the play's own
action rows from the start frame's seed. Prints the PSNR of each step against the simulator (mean over plays)
beside the start frame held, how much detail the model's frames keep against the simulator's, the same two
figures for the model's own codec reconstructing the simulator's frames (the sharpest a play could be), and
writes a contact sheet (simulator, codec and model rows, every second frame) to `--sheet`.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import videogpt_core
from benchmarks.common import cpu_model
from docs.worlds.rollout_sheet import sheet
from videogpt_core.data.transforms import to_model_video
from videogpt_core.data.worlds import split_seeds
from videogpt_core.data.worlds.controls import controls_for
from videogpt_core.data.worlds.simulators import closing_new_simulators
from videogpt_core.data.worlds.vizdoom import replay_vizdoom
from videogpt_core.evaluation.metrics import psnr_per_frame
from videogpt_core.inference.codec_windows import reconstruct_in_windows
from videogpt_core.inference.play import PlaySession
from videogpt_core.io.video_io import read_image

ROOT = Path(__file__).resolve().parents[1]
START_FRAMES = 4  # demo/examples/vizdoom-test-0..3.png
WALK_AND_TURN = ("left", "right", "up", "down")  # those of them the scenario has


def key_presses(names: list[str], play: int, presses: int) -> list[str]:
    """`presses` key names in runs of 1-6 presses of one key, as a player holds a key for a while."""
    rng = np.random.default_rng(play)
    keys: list[str] = []
    while len(keys) < presses:
        keys += [names[int(rng.integers(len(names)))]] * int(rng.integers(1, 7))
    return keys[:presses]


def step_psnr(frames: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(T,) dB of uint8 frames (T, H, W, 3) against the simulator's."""
    def video(array):
        return torch.from_numpy(array).permute(3, 0, 1, 2)[None]
    return psnr_per_frame(video(frames), video(truth), data_range=255.0).numpy()


def detail(frames: np.ndarray) -> np.ndarray:
    """(T,) mean absolute difference between neighbouring pixels of each frame: a grey wash scores low
    whatever its PSNR (PSNR rewards a blurred guess over a sharp wrong one)."""
    grey = frames.astype(np.float32).mean(axis=-1)
    return np.abs(np.diff(grey, axis=1)).mean(axis=(1, 2)) + np.abs(np.diff(grey, axis=2)).mean(axis=(1, 2))


def one_play(pipeline, controls, seed: int, start: np.ndarray, play: int, presses: int) -> dict:
    session = PlaySession(pipeline, start, seed=play)
    names = [name for name in controls.names if name in WALK_AND_TURN]
    for key in key_presses(names, play, presses):
        session.step(controls.row([key]))
    frames, actions = session.frames, session.actions
    truth = replay_vizdoom(seed, actions).frames  # raises when the player dies on the way
    if truth.shape != frames.shape:
        raise SystemExit(f"the simulator's frames are {truth.shape[1:]}, the model's {frames.shape[1:]}: "
                         "the model was trained on another resolution than the simulator renders")
    if not np.array_equal(truth[0], start):
        raise SystemExit(f"seed {seed} does not replay to its start frame: demo/examples is stale "
                         "(rewrite it with `python -m demo.examples`)")
    held = np.broadcast_to(start, frames.shape).copy()
    # The codec's own reconstruction of the simulator's frames: the sharpest and closest any play could be.
    codec = reconstruct_in_windows(pipeline.vqvae, to_model_video(truth)[None].to(pipeline.device))[0][0]
    return {"model": step_psnr(frames[1:], truth[1:]), "held": step_psnr(held[1:], truth[1:]),
            "codec": step_psnr(codec[1:], truth[1:]),
            "detail_ratio": detail(frames[1:]).mean() / detail(truth[1:]).mean(),
            "codec_detail_ratio": detail(codec[1:]).mean() / detail(truth[1:]).mean(),
            "frames": frames, "truth": truth, "codec_frames": codec}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "vizdoom")
    parser.add_argument("--plays", type=int, default=10)
    parser.add_argument("--presses", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sheet", type=Path, default=Path("play-vs-simulator.png"),
                        help="where the contact sheet goes (default: %(default)s)")
    args = parser.parse_args(argv)
    pipeline = videogpt_core.load_pipeline(args.checkpoint, device="cpu", threads=args.threads)
    controls = controls_for("vizdoom", pipeline.config.action_dim)
    seeds = split_seeds("test", START_FRAMES)
    load_before = os.getloadavg()[0]
    plays = []
    with closing_new_simulators():
        for play in range(args.plays):
            index = play % START_FRAMES
            start = read_image(ROOT / "demo" / "examples" / f"vizdoom-test-{index}.png")
            plays.append(one_play(pipeline, controls, int(seeds[index]), start, play, args.presses))
    model = np.stack([p["model"] for p in plays]).mean(axis=0)  # (frames,): each step's mean over plays
    held = np.stack([p["held"] for p in plays]).mean(axis=0)
    image = sheet([(p["truth"], p["codec_frames"], p["frames"]) for p in plays])
    Image.fromarray(image).resize((image.shape[1] * 2, image.shape[0] * 2), Image.NEAREST).save(args.sheet)
    report = {"checkpoint": str(args.checkpoint), "plays": args.plays, "presses": args.presses,
              "frames_per_play": int(len(model)), "threads": args.threads, "machine": cpu_model(),
              "mean_psnr_model": round(float(model.mean()), 2),
              "mean_psnr_start_frame_held": round(float(held.mean()), 2),
              "frames_above_held": f"{int((model > held).sum())} of {len(model)}",
              # the model's frames' detail against the simulator's (1: as sharp; a grey wash: far below)
              "detail_ratio": round(float(np.mean([p["detail_ratio"] for p in plays])), 3),
              # the codec reconstructing the simulator's frames: the ceiling of both figures above
              "mean_psnr_codec": round(float(np.mean([p["codec"].mean() for p in plays])), 2),
              "codec_detail_ratio": round(float(np.mean([p["codec_detail_ratio"] for p in plays])), 3),
              "per_frame_model": [round(float(v), 2) for v in model],
              "per_frame_held": [round(float(v), 2) for v in held],
              "per_play_model_minus_held": [round(float(p["model"].mean() - p["held"].mean()), 2) for p in plays],
              "sheet": str(args.sheet),
              "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)]}
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()

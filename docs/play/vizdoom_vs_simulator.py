"""Play a ViZDoom world model key by key and replay the same keys in the simulator.

    python docs/play/vizdoom_vs_simulator.py          # checkpoints/vizdoom, 10 plays of 30 key presses

Each play starts from the first frame of a test episode (seeds 10,000,000.., never trained on; the first four
are the shipped demo/examples/vizdoom-test-*.png) and presses 30 keys the way a player would: runs of 2-5
presses of one of left, right, forward, forward+left, forward+right, drawn from the play's own seed. The
model steps through the Play tab's session (one key -> one step, default sampling); ViZDoom renders the same
keys from the same start. Reported: per-step PSNR of the played frames against the simulator's, and the same
for the start frame held (the baseline a world model must beat), over all plays; the horizontal shift of each
turning step (phase correlation, as the world scores) in the played and the simulated frames; and a contact
sheet (simulator row above the played row) of the first plays.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import videogpt_core
from videogpt_core.data.worlds import split_seeds
from videogpt_core.data.worlds.vizdoom import SCENARIOS, replay_vizdoom
from videogpt_core.evaluation.metrics import psnr_from_mse
from videogpt_core.evaluation.vizdoom_world import MIN_SHIFT_PX, horizontal_shifts, turn_signs
from videogpt_core.inference.play import PlaySession

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"left": ("TURN_LEFT",), "right": ("TURN_RIGHT",), "forward": ("MOVE_FORWARD",),
        "forward+left": ("MOVE_FORWARD", "TURN_LEFT"), "forward+right": ("MOVE_FORWARD", "TURN_RIGHT")}


def key_plan(seed: int, presses: int) -> list[str]:
    """Runs of 2-5 presses of one key (combination), drawn from `seed`."""
    rng, plan = np.random.default_rng(seed), []
    while len(plan) < presses:
        plan += [str(rng.choice(list(KEYS)))] * int(rng.integers(2, 6))
    return plan[:presses]


def action_rows(plan: list[str], buttons: tuple[str, ...]) -> np.ndarray:
    """(len(plan) + 1, n_buttons) multi-hot rows; row 0 (the start frame's) is empty."""
    rows = np.zeros((len(plan) + 1, len(buttons)), dtype=np.float32)
    for step, key in enumerate(plan, start=1):
        for button in KEYS[key]:
            rows[step, buttons.index(button)] = 1.0
    return rows


def psnr_per_step(frames: np.ndarray, reference: np.ndarray) -> np.ndarray:
    mse = ((frames.astype(np.float64) - reference.astype(np.float64)) ** 2).mean(axis=(1, 2, 3))
    return psnr_from_mse(np.maximum(mse, 1e-10), data_range=255.0).numpy()


def sheet(pairs: list[tuple[np.ndarray, np.ndarray, list[str]]], scale: int = 1, gap: int = 2, caption: int = 12
          ) -> Image.Image:
    """Per play: the simulator's frames above the played ones, every frame labelled with its key."""
    n_frames, size = len(pairs[0][0]), pairs[0][0].shape[1] * scale
    width = n_frames * (size + gap) + gap
    image = Image.new("RGB", (width, len(pairs) * (2 * size + caption + 3 * gap) + gap), (30, 30, 30))
    draw = ImageDraw.Draw(image)
    for row, (simulated, played, labels) in enumerate(pairs):
        y = gap + row * (2 * size + caption + 3 * gap)
        for index in range(n_frames):
            x = gap + index * (size + gap)
            short = "".join(part[0].upper() for part in labels[index].split("+"))  # F, L, R, FL, FR
            draw.text((x + 1, y), short, fill=(230, 230, 230))
            image.paste(Image.fromarray(simulated[index]).resize((size, size), Image.NEAREST), (x, y + caption))
            image.paste(Image.fromarray(played[index]).resize((size, size), Image.NEAREST),
                        (x, y + caption + size + gap))
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "vizdoom")
    parser.add_argument("--plays", type=int, default=10)
    parser.add_argument("--presses", type=int, default=30)
    parser.add_argument("--sheet-plays", type=int, default=3, help="plays drawn in the contact sheet")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "vizdoom-vs-simulator.png")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--context-slices", type=int, default=None,
                        help="latent slices a full window keeps when it slides (default: the Play tab's)")
    args = parser.parse_args()
    pipeline = videogpt_core.load_pipeline(args.checkpoint, device="cpu", threads=args.threads)
    scenario = next(s for s in SCENARIOS.values() if len(s.buttons) == pipeline.config.action_dim)
    buttons = tuple(scenario.buttons)
    seeds = split_seeds("test", args.plays)
    played_psnr, held_psnr, shifts, pairs, seconds = [], [], [], [], []
    for play, seed in enumerate(seeds):
        plan = key_plan(play, args.presses)
        rows = action_rows(plan, buttons)
        simulated = replay_vizdoom(int(seed), rows, scenario=scenario.name).frames
        start = simulated[0]
        session = PlaySession(pipeline, start, seed=play, context_slices=args.context_slices)
        for row in rows[1:]:
            seconds.append(session.step(row).seconds)
        played = session.frames
        if played.shape != simulated.shape:
            raise RuntimeError(f"play {play}: {played.shape} frames against the simulator's {simulated.shape}; "
                               "this script plays models of one frame per key")
        played_psnr.append(psnr_per_step(played[1:], simulated[1:]))
        held_psnr.append(psnr_per_step(np.broadcast_to(start, simulated[1:].shape), simulated[1:]))
        expected = turn_signs(rows, buttons)[1:]
        turning = expected != 0
        shifts.append((expected[turning], horizontal_shifts(played)[turning], horizontal_shifts(simulated)[turning]))
        if play < args.sheet_plays:
            pairs.append((simulated, played, ["start"] + plan))
        print(f"play {play} (seed {seed}): {played_psnr[-1].mean():.2f} dB played, {held_psnr[-1].mean():.2f} dB "
              f"start frame held", flush=True)
    played_psnr, held_psnr = np.stack(played_psnr), np.stack(held_psnr)
    expected = np.concatenate([s[0] for s in shifts])
    played_shift, simulated_shift = np.concatenate([s[1] for s in shifts]), np.concatenate([s[2] for s in shifts])
    played_turn = np.where(np.abs(played_shift) >= MIN_SHIFT_PX, np.sign(played_shift), 0.0)
    simulated_turn = np.where(np.abs(simulated_shift) >= MIN_SHIFT_PX, np.sign(simulated_shift), 0.0)
    report = {
        "checkpoint": str(args.checkpoint), "plays": args.plays, "presses": args.presses,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "psnr_played_db": float(played_psnr.mean()), "psnr_start_held_db": float(held_psnr.mean()),
        "psnr_played_by_step": [round(float(v), 2) for v in played_psnr.mean(axis=0)],
        "psnr_start_held_by_step": [round(float(v), 2) for v in held_psnr.mean(axis=0)],
        "plays_above_held": int((played_psnr.mean(axis=1) > held_psnr.mean(axis=1)).sum()),
        "turn_steps": int(len(expected)),
        "turns_the_right_way_played": float(np.mean(played_turn == expected)),
        "turns_the_right_way_simulator": float(np.mean(simulated_turn == expected)),
        "step_seconds_median": float(np.median(seconds)),
    }
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    sheet(pairs).save(args.out, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

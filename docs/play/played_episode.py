"""Contact sheet of a played pusher episode: the Play tab's steps driven by a fixed key plan.

    python docs/play/played_episode.py        # writes docs/play/pusher-played-episode.png

Starts from demo/examples/pusher-test-0.png (session seed 0, temperature 1, the window less one slice of
context, as the Play tab) and holds right x3, down x3, left x3, up+right x2, nothing x1 steps (one latent
slice of 4 frames each; the first step adds 3 frames to the start frame). Every frame, 2x, labelled with
the keys held.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import videogpt_core
from videogpt_core.data.worlds.controls import pusher_controls
from videogpt_core.inference.play import PlaySession
from videogpt_core.io.video_io import read_image

ROOT = Path(__file__).resolve().parents[2]
PLAN = [["right"]] * 3 + [["down"]] * 3 + [["left"]] * 3 + [["up", "right"]] * 2 + [[]]


def contact_sheet(frames: np.ndarray, labels: list[str], columns: int = 12, scale: int = 2, gap: int = 2,
                  caption: int = 14) -> Image.Image:
    size = frames.shape[1] * scale
    rows = -(-len(frames) // columns)
    sheet = Image.new("RGB", (columns * (size + gap) + gap, rows * (size + caption + gap) + gap), (30, 30, 30))
    draw = ImageDraw.Draw(sheet)
    for index, (frame, label) in enumerate(zip(frames, labels)):
        x, y = gap + (index % columns) * (size + gap), gap + (index // columns) * (size + caption + gap)
        sheet.paste(Image.fromarray(frame).resize((size, size), Image.NEAREST), (x, y + caption))
        draw.text((x + 2, y + 1), f"{index}: {label}", fill=(230, 230, 230))
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "pusher-played-episode.png")
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "pusher")
    args = parser.parse_args()
    pipeline = videogpt_core.load_pipeline(args.checkpoint, device="cpu", threads=1, compile=True)
    pipeline.warm_up((1,))
    controls = pusher_controls()
    session = PlaySession(pipeline, read_image(ROOT / "demo" / "examples" / "pusher-test-0.png"), seed=0)
    labels = ["start"]
    for held in PLAN:
        step = session.step(controls.row(held))
        labels += [" ".join(held) or "no key"] * len(step.frames)
        print(f"{' '.join(held) or 'no key'}: {len(step.frames)} frames in {step.seconds:.2f} s")
    contact_sheet(session.frames, labels).save(args.out, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

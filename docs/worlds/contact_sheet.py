"""Contact sheets of the simulated worlds: 8 episodes (rows) x 8 evenly spaced frames (columns), upscaled 2x.

    python docs/worlds/contact_sheet.py            # writes docs/worlds/{vizdoom,vizdoom-freedoom,fetchpush}.png

Needs the simulators (pip install -e ".[worlds]"). Rows are train seeds 0-7 of each world's default episode length
(health_gathering_supreme: 100 frames; freedoom and fetchpush: 32).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from videogpt_core.data.worlds import get_world

SHEETS = {  # file name -> (world, options)
    "vizdoom.png": ("vizdoom", {}),
    "vizdoom-freedoom.png": ("vizdoom", {"scenario": "freedoom"}),
    "fetchpush.png": ("fetchpush", {}),
}


def contact_sheet(world: str, options: dict, n_episodes: int = 8, n_columns: int = 8, gap: int = 2) -> np.ndarray:
    """uint8 (H, W, 3): one row per episode, n_columns frames from first to last, separated by white gaps."""
    spec = get_world(world, **options)
    rows = []
    for seed in range(n_episodes):
        frames = spec.generate(seed, spec.default_frames).frames
        picks = np.linspace(0, len(frames) - 1, n_columns).round().astype(int)
        tiles = [np.pad(frames[j], ((0, gap), (0, gap), (0, 0)), constant_values=255) for j in picks]
        rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(Path(__file__).parent), help="folder for the PNGs (default: docs/worlds)")
    args = parser.parse_args()
    for name, (world, options) in SHEETS.items():
        sheet = contact_sheet(world, options)
        image = Image.fromarray(sheet).resize((sheet.shape[1] * 2, sheet.shape[0] * 2), Image.NEAREST)
        image.save(Path(args.out) / name, optimize=True)
        print(f"wrote {Path(args.out) / name}")


if __name__ == "__main__":
    main()

"""Pictures the demo shows: samples side by side, the live preview grid that fills in as frames arrive, and a
latent code map (one colour per code)."""
from __future__ import annotations

import math

import numpy as np

from videogpt_core.io.video_io import upscale_nearest

DISPLAY_SIZE = 256  # results are upscaled (nearest neighbour) to about this many pixels per frame
PREVIEW_SIZE = 96  # live-preview frame size
PREVIEW_COLUMNS = 8  # frames per row of the live preview


def display_scale(resolution: int, target: int = DISPLAY_SIZE) -> int:
    """Integer nearest-neighbour factor that brings a frame to about `target` pixels."""
    return max(1, target // max(1, resolution))


def tile_samples(frames: np.ndarray, gap: int = 1, gap_value: int = 24) -> np.ndarray:
    """(n, T, H, W, 3) -> (T, H, n*W + (n-1)*gap, 3): samples side by side, split by thin dark lines."""
    n, t, h, w, _ = frames.shape
    out = np.full((t, h, n * w + (n - 1) * gap, 3), gap_value, dtype=np.uint8)
    for i in range(n):
        out[:, :, i * (w + gap): i * (w + gap) + w] = frames[i]
    return out


def progress_grid(frames: np.ndarray, total_frames: int, columns: int = PREVIEW_COLUMNS,
                  size: int = PREVIEW_SIZE) -> np.ndarray:
    """Frames decoded so far (n, T_done, H, W, 3) as a grid: one block of rows per sample, `columns`
    frames per row, frames still to come drawn dark; upscaled (nearest neighbour) to about `size` px."""
    n, done, h, w, _ = frames.shape
    total = max(total_frames, done, 1)
    columns = min(columns, total)
    rows = math.ceil(total / columns)
    gap = 1
    block_h = rows * (h + gap) - gap
    grid = np.full((n * (block_h + 3 * gap) - 3 * gap, columns * (w + gap) - gap, 3), 255, dtype=np.uint8)
    for i in range(n):
        top = i * (block_h + 3 * gap)
        for f in range(total):
            y, x = top + (f // columns) * (h + gap), (f % columns) * (w + gap)
            grid[y: y + h, x: x + w] = frames[i, f] if f < done else 48
    return upscale_nearest(grid[None], display_scale(max(h, w), size))[0]


def code_palette(n_codes: int) -> np.ndarray:
    """(n_codes, 3) uint8: one distinct colour per code (golden-ratio hues, three lightness bands)."""
    import colorsys

    colours = [colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.55 + 0.15 * (i % 3), 0.95 - 0.25 * (i % 3 == 1))
               for i in range(n_codes)]
    return (np.asarray(colours) * 255).round().astype(np.uint8)


def codes_image(codes: np.ndarray, n_codes: int, size: int = 128) -> np.ndarray:
    """Latent grids (t, h, w) -> one image: each time slice's grid coloured by code, the slices in reading order
    on a near-square grid (a strip of slices left to right shrank to a line in a gallery's square tiles)."""
    t, h, w = codes.shape
    cell = max(1, size // max(h, w))
    colours = code_palette(n_codes)[codes]  # (t, h, w, 3)
    slices = upscale_nearest(colours, cell)  # (t, h*cell, w*cell, 3)
    gap = max(2, cell // 2)
    columns = math.ceil(math.sqrt(t))
    rows = math.ceil(t / columns)
    step_y, step_x = h * cell + gap, w * cell + gap
    out = np.full((rows * step_y - gap, columns * step_x - gap, 3), 255, dtype=np.uint8)
    for i in range(t):
        y, x = (i // columns) * step_y, (i % columns) * step_x
        out[y: y + h * cell, x: x + w * cell] = slices[i]
    return out

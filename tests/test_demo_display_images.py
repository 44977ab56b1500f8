"""demo/display_images.py: the live preview grid and the code map's palette."""
from __future__ import annotations

import numpy as np

from demo.display_images import code_palette, progress_grid


def test_progress_grid_marks_frames_to_come():
    frames = np.full((2, 3, 4, 4, 3), 200, np.uint8)
    grid = progress_grid(frames, total_frames=5, columns=4, size=4)
    assert grid.shape == (2 * (2 * 5 - 1) + 3, 4 * 5 - 1, 3)
    assert grid[0, 0, 0] == 200 and grid[5, 0, 0] == 48  # frame 0 drawn, frame 4 (second row) still to come
    assert grid[5, 5, 0] == 255  # no frame 5: background


def test_code_palette():
    palette = code_palette(64)
    assert len({tuple(c) for c in palette}) == 64

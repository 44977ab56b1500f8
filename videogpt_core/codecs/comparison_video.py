"""Side-by-side comparison frames: the original and one column per codec, each titled, with an optional row
of per-pixel error heatmaps under the reconstructions."""
from __future__ import annotations

import cv2
import numpy as np

HEADER_PX = 14  # title strip above each column, in output pixels (after upscaling)
ERROR_SATURATION = 64  # a mean |error| of this many grey levels (of 255) or more shows as the hottest colour


def error_heatmap(original: np.ndarray, reconstruction: np.ndarray) -> np.ndarray:
    """uint8 (T, H, W, 3) heatmaps of the mean absolute error over RGB (black: exact; yellow: >= saturation)."""
    error = np.abs(original.astype(np.int16) - reconstruction.astype(np.int16)).mean(axis=-1)
    scaled = np.clip(error * (255.0 / ERROR_SATURATION), 0, 255).astype(np.uint8)
    return np.stack([cv2.cvtColor(cv2.applyColorMap(frame, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)
                     for frame in scaled])


def _titled(frames: np.ndarray, title: str) -> np.ndarray:
    """frames (T, H, W, 3) with a black strip holding `title` (cut to fit) on top."""
    n_frames, _, width, _ = frames.shape
    strip = np.zeros((HEADER_PX, width, 3), np.uint8)
    scale = 0.35
    while title and cv2.getTextSize(title, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] > width - 4:
        title = title[:-1]
    cv2.putText(strip, title, (2, HEADER_PX - 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (235, 235, 235), 1, cv2.LINE_AA)
    return np.concatenate([np.broadcast_to(strip, (n_frames, *strip.shape)), frames], axis=1)


def side_by_side(original: np.ndarray, reconstructions: list[np.ndarray], titles: list[str],
                 scale: int = 1, heatmaps: bool = True) -> np.ndarray:
    """uint8 (T, rows * (HEADER_PX + H*scale), (1 + n) * W*scale, 3): original | each reconstruction, and
    below each reconstruction its error heatmap (under the original: a black tile)."""
    if len(reconstructions) != len(titles):
        raise ValueError(f"{len(reconstructions)} reconstructions but {len(titles)} titles")

    def enlarge(frames: np.ndarray) -> np.ndarray:
        return frames.repeat(scale, axis=1).repeat(scale, axis=2) if scale > 1 else frames

    top = [_titled(enlarge(original), "original")]
    top += [_titled(enlarge(frames), title) for frames, title in zip(reconstructions, titles)]
    rows = [np.concatenate(top, axis=2)]
    if heatmaps:
        bottom = [_titled(np.zeros_like(enlarge(original)), f"|error| 0-{ERROR_SATURATION}")]
        bottom += [_titled(enlarge(error_heatmap(original, frames)), "error")
                   for frames in reconstructions]
        rows.append(np.concatenate(bottom, axis=2))
    return np.ascontiguousarray(np.concatenate(rows, axis=1))

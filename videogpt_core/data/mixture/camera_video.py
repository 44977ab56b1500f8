"""Video from a still photograph: a synthetic camera pans, zooms, rolls and shakes over it while the light
changes, and cut-outs of other photographs move across the view on their own paths (occlusion,
independent motion).

The camera's view spans from close-ups (a crop about as wide as the output, slightly magnified) to the whole
picture (shrunk many times, sampled from the image pyramid level nearest its scale, so it is not aliased).
"""
from __future__ import annotations

import cv2
import numpy as np

from .layers import Layer, composite, patch_transforms, shape_mask, smooth_path
from .natural_images import ImageSource, load_pyramid

MAX_CUTOUTS = 3
_CUTOUT_COUNT_PROBABILITIES = (0.3, 0.35, 0.2, 0.15)  # 0, 1, 2, 3 cut-outs


def _camera_views(rng: np.random.Generator, image_shape: tuple[int, int], n_frames: int, size: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: view centre (T, 2) and view width (T,) in full-resolution image pixels, roll angle (T,) radians."""
    image_h, image_w = image_shape
    smallest, largest = 0.6 * size, 0.95 * min(image_h, image_w)
    start_width = float(np.exp(rng.uniform(np.log(smallest), np.log(max(largest, smallest * 1.01)))))
    zoom_rate = rng.normal(0.0, 0.035) if rng.random() < 0.5 else 0.0  # log-width change per frame
    widths = start_width * np.exp(zoom_rate * np.arange(n_frames) + smooth_path(rng, n_frames, 0.0, wobble=0.08))
    roll = rng.normal(0.0, np.radians(4.0)) + (
        smooth_path(rng, n_frames, np.radians(1.2), wobble=np.radians(3.0)) if rng.random() < 0.35 else 0.0)
    roll = np.broadcast_to(roll, (n_frames,)).astype(np.float64)
    # Pan and shake are drawn in output pixels per frame, then scaled by the view's width (a close-up moves
    # fewer image pixels for the same on-screen speed).
    pan_speed = rng.choice([0.0, 0.7, 2.0, 3.5], p=[0.15, 0.35, 0.35, 0.15])
    shake = rng.choice([0.0, 0.5, 1.2], p=[0.6, 0.25, 0.15])
    step = np.stack([np.diff(smooth_path(rng, n_frames + 1, pan_speed, wobble=pan_speed * 2, shake=shake)),
                     np.diff(smooth_path(rng, n_frames + 1, pan_speed, wobble=pan_speed * 2, shake=shake))], 1)
    centres = np.zeros((n_frames, 2))
    centres[0] = rng.uniform(0, 1, 2) * (image_w, image_h)
    for t in range(n_frames):
        # The view's axis-aligned extent must stay inside the image: shrink the view if it cannot, and stop
        # the pan at the image's edge like a camera on its mount.
        cover = abs(np.cos(roll[t])) + abs(np.sin(roll[t]))
        widths[t] = min(widths[t], 0.999 * min(image_h, image_w) / cover)
        half = widths[t] * cover / 2
        if t:
            centres[t] = centres[t - 1] + step[t] * widths[t] / size
        centres[t] = np.clip(centres[t], (half, half), (image_w - half, image_h - half))
    return centres, widths, roll


def _view_matrix(centre: np.ndarray, width: float, angle: float, size: int, level: int) -> np.ndarray:
    """2x3 map from output pixels to pixels of pyramid `level` (for cv2.WARP_INVERSE_MAP)."""
    scale = width / size / 2**level
    cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
    linear = np.array([[cos, -sin], [sin, cos]])
    offset = centre / 2**level - linear @ np.array([size / 2, size / 2])
    return np.concatenate([linear, offset[:, None]], axis=1)


def _lighting(rng: np.random.Generator, n_frames: int) -> np.ndarray:
    """(T, 1, 1, 3) gains: a brightness drift or flicker and a slight colour cast (white balance)."""
    brightness = rng.normal(0.0, 0.12) + smooth_path(rng, n_frames, 0.02, wobble=rng.choice([0.0, 0.1]))
    cast = rng.normal(0.0, 0.05, 3)
    return np.exp(brightness[:, None] + cast[None, :]).reshape(n_frames, 1, 1, 3).astype(np.float32)


def _cutout(rng: np.random.Generator, source: ImageSource, n_frames: int, size: int) -> Layer:
    """A shaped piece of `source` that crosses the frame on its own path, spinning and scaling a little."""
    levels = load_pyramid(source)
    on_screen = rng.uniform(0.18, 0.6) * size  # the cut-out's width on screen, output pixels
    aspect = float(np.exp(rng.normal(0.0, 0.3)))
    level = levels[int(rng.integers(0, min(3, len(levels))))]  # detail from fine to coarse
    patch_w = int(np.clip(round(on_screen * rng.uniform(0.8, 2.0)), 6, min(level.shape[:2]) - 1))
    patch_h = int(np.clip(round(patch_w * aspect), 6, level.shape[0] - 1))
    y0 = int(rng.integers(0, level.shape[0] - patch_h + 1))
    x0 = int(rng.integers(0, level.shape[1] - patch_w + 1))
    rgb = level[y0: y0 + patch_h, x0: x0 + patch_w].copy()
    rgb *= np.exp(rng.normal(0.0, 0.15))  # lit differently from the background
    alpha = shape_mask(rng, patch_h, patch_w)
    scale0 = on_screen / patch_w
    speed = rng.uniform(0.5, 3.0)
    direction = rng.uniform(0, 2 * np.pi)
    start = rng.uniform(0.1, 0.9, 2) * size - np.array([np.cos(direction), np.sin(direction)]) * speed * n_frames / 2
    xs = start[0] + np.cos(direction) * speed * np.arange(n_frames) + smooth_path(rng, n_frames, 0.3, wobble=2.0)
    ys = start[1] + np.sin(direction) * speed * np.arange(n_frames) + smooth_path(rng, n_frames, 0.3, wobble=2.0)
    angles = rng.uniform(-0.4, 0.4) + smooth_path(rng, n_frames, 0.04 if rng.random() < 0.5 else 0.0)
    scales = scale0 * np.exp(smooth_path(rng, n_frames, 0.02 if rng.random() < 0.4 else 0.0))
    transforms = patch_transforms((patch_h, patch_w), np.stack([xs, ys], 1), scales, angles)
    return Layer(rgb, alpha, transforms)


def camera_video(rng: np.random.Generator, images: tuple[ImageSource, ...], n_frames: int, size: int = 64
                 ) -> tuple[np.ndarray, list[str]]:
    """(T, size, size, 3) uint8 frames filmed over a random image of `images`, and the names of the images used."""
    background = images[int(rng.integers(len(images)))]
    levels = load_pyramid(background)
    centres, widths, roll = _camera_views(rng, levels[0].shape[:2], n_frames, size)
    # One pyramid level for the whole clip (no popping): the one at which the narrowest view is >= 1x the output.
    level = int(np.clip(np.floor(np.log2(widths.min() / size)), 0, len(levels) - 1))
    frames = np.empty((n_frames, size, size, 3), np.float32)
    for t in range(n_frames):
        frames[t] = cv2.warpAffine(levels[level], _view_matrix(centres[t], widths[t], roll[t], size, level),
                                   (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                   borderMode=cv2.BORDER_REFLECT101)
    n_cutouts = int(rng.choice(MAX_CUTOUTS + 1, p=_CUTOUT_COUNT_PROBABILITIES))
    pieces = [images[int(rng.integers(len(images)))] for _ in range(n_cutouts)]
    composite(frames, [_cutout(rng, piece, n_frames, size) for piece in pieces])
    frames *= _lighting(rng, n_frames)
    return np.clip(frames + 0.5, 0, 255).astype(np.uint8), [background.name] + [piece.name for piece in pieces]

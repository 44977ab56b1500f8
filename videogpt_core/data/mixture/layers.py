"""Moving layers: smooth random trajectories, soft-edged shapes, and compositing textured patches onto frames.

A layer is an RGB patch with an alpha mask and one 2x3 affine map per frame (patch pixels -> frame pixels);
frames are painted back to front. Both the camera-moved natural images (their cut-outs) and the dead-leaves
video are made of such layers.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_SUPERSAMPLE = 4  # masks are drawn this much larger and shrunk, which anti-aliases their edges


@dataclass
class Layer:
    rgb: np.ndarray  # (h, w, 3) float32 in [0, 255]
    alpha: np.ndarray  # (h, w) float32 in [0, 1]
    transforms: np.ndarray  # (T, 2, 3) float64: patch (x, y) -> frame (x, y), one per frame


def smooth_path(rng: np.random.Generator, n: int, velocity_scale: float, wobble: float = 0.0,
                shake: float = 0.0) -> np.ndarray:
    """(n,) float64 offsets from 0: a random constant velocity, a gentle acceleration, a slow sinusoidal
    wobble (`wobble` peak amplitude) and frame-to-frame shake (`shake` standard deviation), all in the caller's unit."""
    t = np.arange(n, dtype=np.float64)
    velocity = rng.normal(0.0, velocity_scale)
    acceleration = rng.normal(0.0, velocity_scale / max(n, 1))
    path = velocity * t + 0.5 * acceleration * t**2
    if wobble:
        period = rng.uniform(6.0, 30.0)
        path += wobble * rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    if shake:
        jitter = rng.normal(0.0, shake, n)
        path += np.convolve(jitter, [0.25, 0.5, 0.25], mode="same")  # a hand shakes at a few hertz, not white noise
    return path - path[0]


def shape_mask(rng: np.random.Generator, height: int, width: int, kind: str | None = None) -> np.ndarray:
    """(height, width) float32 alpha in [0, 1] of a random shape filling the box: a disc/ellipse, a (rounded)
    rectangle or an irregular polygon, with anti-aliased edges."""
    kind = kind or str(rng.choice(["ellipse", "rectangle", "polygon"]))
    big_h, big_w = height * _SUPERSAMPLE, width * _SUPERSAMPLE
    canvas = np.zeros((big_h, big_w), np.uint8)
    centre = (big_w / 2, big_h / 2)
    if kind == "ellipse":
        cv2.ellipse(canvas, (int(centre[0]), int(centre[1])), (big_w // 2 - 1, big_h // 2 - 1), 0, 0, 360, 255, -1)
    elif kind == "rectangle":
        radius = int(rng.uniform(0.0, 0.35) * min(big_h, big_w))
        cv2.rectangle(canvas, (radius, 0), (big_w - 1 - radius, big_h - 1), 255, -1)
        cv2.rectangle(canvas, (0, radius), (big_w - 1, big_h - 1 - radius), 255, -1)
        if radius:
            for x in (radius, big_w - 1 - radius):
                for y in (radius, big_h - 1 - radius):
                    cv2.circle(canvas, (x, y), radius, 255, -1)
    elif kind == "polygon":
        n_vertices = int(rng.integers(5, 10))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n_vertices))
        radii = rng.uniform(0.55, 1.0, n_vertices)
        points = np.stack([centre[0] + radii * np.cos(angles) * (big_w / 2 - 1),
                           centre[1] + radii * np.sin(angles) * (big_h / 2 - 1)], axis=1)
        cv2.fillPoly(canvas, [np.round(points).astype(np.int32)], 255)
    else:
        raise ValueError(f"unknown shape {kind!r}; choose ellipse, rectangle or polygon")
    return cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def patch_transforms(patch_size: tuple[int, int], centres: np.ndarray, scales: np.ndarray | float,
                     angles: np.ndarray | float) -> np.ndarray:
    """(T, 2, 3) maps that put the patch's centre at centres[t] (T, 2), scaled by scales[t] and rotated by
    angles[t] radians."""
    height, width = patch_size
    centres = np.asarray(centres, np.float64).reshape(-1, 2)
    scales, angles = np.broadcast_arrays(np.asarray(scales, np.float64), np.asarray(angles, np.float64))
    scales, angles = np.broadcast_to(scales, len(centres)), np.broadcast_to(angles, len(centres))
    cos, sin = np.cos(angles) * scales, np.sin(angles) * scales
    linear = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], 1)  # (T, 2, 2)
    offset = centres - linear @ np.array([width / 2, height / 2])
    return np.concatenate([linear, offset[:, :, None]], axis=2)


def composite(frames: np.ndarray, layers: list[Layer]) -> np.ndarray:
    """Paint `layers` (back to front) onto float32 frames (T, H, W, 3) in place and return them.

    Each layer is warped only into the bounding box it covers, so many small layers stay cheap.
    """
    n_frames, height, width = frames.shape[:3]
    for layer in layers:
        rgba = np.dstack([layer.rgb * layer.alpha[..., None], layer.alpha])  # premultiplied: edges blend cleanly
        h, w = layer.alpha.shape
        corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], np.float64).T
        mapped = layer.transforms @ corners  # (T, 2, 4): the patch's corners in every frame
        low = np.maximum(np.floor(mapped.min(axis=2)).astype(int) - 1, 0)
        high = np.minimum(np.ceil(mapped.max(axis=2)).astype(int) + 1, (width, height))
        for t in np.flatnonzero(np.all(high > low, axis=1)):  # frames where the layer is on screen
            (x0, y0), (x1, y1) = low[t], high[t]
            shifted = layer.transforms[t].copy()
            shifted[:, 2] -= (x0, y0)
            warped = cv2.warpAffine(rgba, shifted, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            region = frames[t, y0:y1, x0:x1]
            region *= 1.0 - warped[..., 3:]
            region += warped[..., :3]
    return frames

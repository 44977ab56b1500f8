"""Dead-leaves video: many overlapping textured shapes at different depths, moving with parallax.

The dead-leaves model (shapes with a power-law size distribution occluding one another) reproduces the
scale-invariant statistics of natural images: edges at every scale, occlusion boundaries, flat and textured
regions. Here each leaf is a disc, rectangle or polygon filled with a flat colour plus grain, a colour
gradient, a grating, or a crop of a photograph; a camera pan moves near leaves more than far ones (depth), and
some leaves also move on their own.
"""
from __future__ import annotations

import cv2
import numpy as np

from .layers import Layer, composite, patch_transforms, shape_mask, smooth_path
from .natural_images import ImageSource, load_pyramid

SIZE_EXPONENT = 2.5  # p(r) ~ r**-2.5 (3 is exactly scale invariant; a little flatter gives fewer, larger leaves)
RADIUS_RANGE = (2.5, 40.0)  # leaf radii in pixels at 64 px output
DEPTH_RANGE = (0.5, 2.0)  # a leaf at depth d moves 1/d times the camera's pan
COVERAGE_RANGE = (1.5, 4.0)  # how many times over the leaves cover the frame, on average
MAX_LEAVES = 500


def _power_law(rng: np.random.Generator, n: int, low: float, high: float, exponent: float) -> np.ndarray:
    """n samples of p(r) ~ r**-exponent on [low, high] (inverse transform sampling)."""
    a = 1.0 - exponent
    u = rng.uniform(0, 1, n)
    return (low**a + u * (high**a - low**a)) ** (1.0 / a)


def _palette(rng: np.random.Generator, images: tuple[ImageSource, ...], n: int) -> np.ndarray:
    """(n, 3) float32 colours drawn from the pixels of one photograph: natural colour statistics."""
    levels = load_pyramid(images[int(rng.integers(len(images)))])
    small = levels[-1].reshape(-1, 3)
    return small[rng.integers(0, len(small), n)]


def _texture(rng: np.random.Generator, images: tuple[ImageSource, ...], colour: np.ndarray, height: int,
             width: int) -> np.ndarray:
    """(height, width, 3) float32 fill of one leaf."""
    kind = rng.choice(["flat", "photo", "gradient", "grating"], p=[0.35, 0.35, 0.15, 0.15])
    if kind == "photo":
        levels = load_pyramid(images[int(rng.integers(len(images)))])
        level = levels[int(rng.integers(0, min(3, len(levels))))]
        zoom = rng.uniform(0.7, 2.5)
        crop_h = int(np.clip(round(height * zoom), 2, level.shape[0]))
        crop_w = int(np.clip(round(width * zoom), 2, level.shape[1]))
        y0, x0 = int(rng.integers(0, level.shape[0] - crop_h + 1)), int(rng.integers(0, level.shape[1] - crop_w + 1))
        return cv2.resize(level[y0: y0 + crop_h, x0: x0 + crop_w], (width, height), interpolation=cv2.INTER_AREA)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == "flat":
        grain = rng.normal(0.0, rng.uniform(0.0, 10.0), (height, width, 1)).astype(np.float32)
        return np.broadcast_to(colour, (height, width, 3)) + grain
    angle = rng.uniform(0, 2 * np.pi)
    along = (np.cos(angle) * xs + np.sin(angle) * ys)
    other = colour * rng.uniform(0.3, 1.6, 3).astype(np.float32)
    if kind == "gradient":
        mix = (along - along.min()) / max(float(np.ptp(along)), 1.0)
    else:  # grating: stripes of a random period, sharp or soft
        period = rng.uniform(2.5, 12.0)
        wave = np.sin(2 * np.pi * along / period + rng.uniform(0, 2 * np.pi))
        mix = (wave > 0).astype(np.float32) if rng.random() < 0.5 else 0.5 + 0.5 * wave
    return colour * (1 - mix[..., None]) + other * mix[..., None]


def dead_leaves_video(rng: np.random.Generator, images: tuple[ImageSource, ...], n_frames: int, size: int = 64
                      ) -> np.ndarray:
    """(T, size, size, 3) uint8 frames of a moving dead-leaves scene with textures from `images`."""
    scale = size / 64
    pan = np.stack([smooth_path(rng, n_frames, 1.0, wobble=1.5), smooth_path(rng, n_frames, 1.0, wobble=1.5)], 1)
    pan -= pan[n_frames // 2]  # leaves are placed where they are mid-clip
    travel = float(np.abs(pan).max())
    # Leaves are added until the frame is covered COVERAGE times over on average (each leaf counts with the
    # share of its placement area that the frame is), so few gaps show the background whatever the motion.
    coverage = rng.uniform(*COVERAGE_RANGE)
    radii, depths, reaches = [], [], []
    covered = 0.0
    while covered < coverage and len(radii) < MAX_LEAVES:
        radius = float(_power_law(rng, 1, RADIUS_RANGE[0] * scale, RADIUS_RANGE[1] * scale, SIZE_EXPONENT)[0])
        depth = float(rng.uniform(*DEPTH_RANGE))
        reach = radius + travel / depth  # leaves placed further out than this never enter the frame
        covered += np.pi * radius**2 * 0.8 / (size + 2 * reach) ** 2
        radii.append(radius), depths.append(depth), reaches.append(reach)
    order = np.argsort(depths)[::-1]  # far (large depth) first: painted back to front
    colours = _palette(rng, images, len(radii) + 1)
    frames = np.empty((n_frames, size, size, 3), np.float32)
    frames[:] = _texture(rng, images, colours[-1], size, size)
    layers = []
    for index in order:
        radius, depth, reach, colour = radii[index], depths[index], reaches[index], colours[index]
        aspect = float(np.exp(rng.normal(0.0, 0.35)))
        height = max(2, int(round(2 * radius * aspect)))
        width = max(2, int(round(2 * radius / aspect)))
        alpha = shape_mask(rng, height, width, str(rng.choice(["ellipse", "ellipse", "rectangle", "polygon"])))
        rgb = _texture(rng, images, colour, height, width)
        path = rng.uniform(-reach, size + reach, 2) + pan / depth  # parallax: the pan moves near leaves more
        if rng.random() < 0.3:  # a leaf that moves by itself
            path = path + np.stack([smooth_path(rng, n_frames, 1.2, wobble=2.0),
                                    smooth_path(rng, n_frames, 1.2, wobble=2.0)], 1)
        angles = rng.uniform(0, 2 * np.pi) + smooth_path(rng, n_frames, 0.05 if rng.random() < 0.3 else 0.0)
        transforms = patch_transforms((height, width), path, 1.0, angles)
        layers.append(Layer(rgb.astype(np.float32), alpha, transforms))
    composite(frames, layers)
    return np.clip(frames + 0.5, 0, 255).astype(np.uint8)

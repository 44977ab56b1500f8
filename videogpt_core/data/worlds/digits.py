"""`digits`: a Moving-MNIST-like world; one jittered, warped digit (class 0-9) bouncing on a black frame.

The glyph comes from the scalable font that Pillow ships (`ImageFont.load_default(size=...)`, Pillow >= 10.1
with FreeType), so nothing is downloaded; slant, rotation, stroke width and a smooth elastic warp make
each episode's digit look hand-drawn and different from the others.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont, features

FRAME_SIZE = 64
CLASS_NAMES = tuple(str(digit) for digit in range(10))
FONT_SIZE_RANGE = (30, 42)  # digit heights of roughly 21-30 px (0.72 x size)
MAX_STROKE_WIDTH = 1  # thicker strokes close the loops of 6, 8, 9 at small sizes
SLANT_RANGE = 0.35  # horizontal shear, |x shift| per pixel of height
ROTATION_DEGREES = 12.0
SPEED_RANGE = (1.5, 3.5)  # pixels per frame
_CANVAS = 72  # glyphs are drawn and warped on this square before being cropped
_SALT = 0xD161


@dataclass(frozen=True)
class DigitsEpisode:
    seed: int
    frames: np.ndarray  # (T, 64, 64, 3) uint8
    label: int  # the digit, 0-9
    positions: np.ndarray  # (T, 1, 2) float32, (x, y) centre of the glyph's box, pixels


@lru_cache(maxsize=None)
def _font(size: int) -> ImageFont.FreeTypeFont:
    if not features.check("freetype2"):
        raise RuntimeError(
            "the digits world needs Pillow built with FreeType (for ImageFont.load_default(size=...)); "
            "install the Pillow wheel from PyPI"
        )
    return ImageFont.load_default(size=size)


def _smooth_field(rng: np.random.Generator, amplitude: float) -> np.ndarray:
    """(_CANVAS, _CANVAS) float32 random displacement that varies over ~1/3 of the canvas."""
    coarse = rng.normal(size=(4, 4)).astype(np.float32)
    return cv2.resize(coarse, (_CANVAS, _CANVAS), interpolation=cv2.INTER_CUBIC) * amplitude


def render_digit_glyph(digit: int, rng: np.random.Generator) -> np.ndarray:
    """One randomly styled glyph of `digit`, cropped to its ink: (h, w) float32 in [0, 1]."""
    size = int(rng.integers(FONT_SIZE_RANGE[0], FONT_SIZE_RANGE[1] + 1))
    stroke = int(rng.integers(0, MAX_STROKE_WIDTH + 1))
    image = Image.new("L", (_CANVAS, _CANVAS), 0)
    ImageDraw.Draw(image).text(
        (_CANVAS / 2, _CANVAS / 2), str(digit), fill=255, font=_font(size), anchor="mm",
        stroke_width=stroke, stroke_fill=255,
    )
    # Slant + rotation + a little squash, about the canvas centre; cv2 wants the forward 2x3 map.
    slant = rng.uniform(-SLANT_RANGE, SLANT_RANGE)
    angle = math.radians(rng.uniform(-ROTATION_DEGREES, ROTATION_DEGREES))
    squash = rng.uniform(0.85, 1.15)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    linear = rotation @ np.array([[squash, -slant], [0.0, 1.0]])
    centre = np.array([_CANVAS / 2, _CANVAS / 2])
    affine = np.hstack([linear, (centre - linear @ centre)[:, None]]).astype(np.float32)
    glyph = cv2.warpAffine(np.asarray(image, dtype=np.float32) / 255.0, affine, (_CANVAS, _CANVAS),
                           flags=cv2.INTER_LINEAR, borderValue=0.0)
    # Elastic wobble: a smooth displacement field, as in augmented handwriting.
    grid_x, grid_y = np.meshgrid(np.arange(_CANVAS, dtype=np.float32), np.arange(_CANVAS, dtype=np.float32))
    glyph = cv2.remap(glyph, grid_x + _smooth_field(rng, 1.5), grid_y + _smooth_field(rng, 1.5),
                      interpolation=cv2.INTER_LINEAR, borderValue=0.0)
    ink_rows = np.flatnonzero(glyph.max(axis=1) > 0.05)
    ink_cols = np.flatnonzero(glyph.max(axis=0) > 0.05)
    crop = glyph[ink_rows[0]: ink_rows[-1] + 1, ink_cols[0]: ink_cols[-1] + 1]
    return np.clip(crop, 0.0, 1.0)


def _bounce(start: float, velocity: float, span: float, n_frames: int) -> np.ndarray:
    """Positions in [0, span] of a point moving at `velocity` and reflecting at both ends."""
    if span <= 0:
        return np.zeros(n_frames)
    unfolded = start + velocity * np.arange(n_frames)
    folded = np.mod(unfolded, 2 * span)
    return np.where(folded > span, 2 * span - folded, folded)


def generate_digits_episode(seed: int, n_frames: int = 32) -> DigitsEpisode:
    """One episode: the seed fixes the class, the glyph's style, its brightness and its motion."""
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    rng = np.random.default_rng((_SALT, int(seed)))
    label = int(rng.integers(0, 10))
    glyph = render_digit_glyph(label, rng)
    height, width = glyph.shape
    span_x, span_y = FRAME_SIZE - width, FRAME_SIZE - height
    direction = rng.uniform(0, 2 * math.pi)
    speed = rng.uniform(*SPEED_RANGE)
    xs = np.rint(_bounce(rng.uniform(0, span_x), speed * math.cos(direction), span_x, n_frames)).astype(int)
    ys = np.rint(_bounce(rng.uniform(0, span_y), speed * math.sin(direction), span_y, n_frames)).astype(int)
    brightness = rng.uniform(200.0, 255.0)
    sprite = np.rint(glyph * brightness).astype(np.uint8)
    frames = np.zeros((n_frames, FRAME_SIZE, FRAME_SIZE, 3), dtype=np.uint8)
    for t, (x, y) in enumerate(zip(xs, ys)):
        frames[t, y: y + height, x: x + width] = sprite[..., None]
    positions = np.stack([xs + width / 2, ys + height / 2], axis=-1)[:, None, :].astype(np.float32)
    return DigitsEpisode(int(seed), frames, label, positions)

"""The Generate tab's plain inputs checked and converted: whole numbers and numbers from UI fields (Gradio sends
floats), the seed and the start image. A bad value is a ValueError naming the field."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from demo.user_errors import named_by_file_name
from videogpt_core.io.video_io import read_image

MAX_IMAGE_PIXELS = 20_000_000  # uploads beyond ~20 MP are refused before decoding


def whole_number(value, name: str, low: int | None = None, high: int | None = None) -> int:
    """An int from a UI number (Gradio sends floats), or a clear error naming the field and the range."""
    if value is None or isinstance(value, bool):
        raise ValueError(f"{name} is missing")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number, got {value!r}") from None
    if not math.isfinite(number) or number != int(number):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    number = int(number)
    if (low is not None and number < low) or (high is not None and number > high):
        raise ValueError(f"{name} must be between {low} and {high}, got {number}")
    return number


def real_number(value, name: str) -> float:
    if value is None or isinstance(value, bool):
        raise ValueError(f"{name} is missing")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None


def pick_seed(seed, randomize: bool) -> int:
    if randomize:
        return int(np.random.default_rng().integers(0, 2**31 - 1))
    return whole_number(seed, "seed", 0, 2**63 - 1)


def load_start_image(image) -> np.ndarray | None:
    """Any uploaded image (path, array or PIL image; any size, alpha, grayscale) -> uint8 RGB (H, W, 3)."""
    if image is None or (isinstance(image, str) and not image.strip()):
        return None
    if isinstance(image, dict):  # a FileData-like payload from an API client
        image = image.get("path")
    if isinstance(image, (str, Path)):
        with named_by_file_name(image):
            return read_image(image, max_pixels=MAX_IMAGE_PIXELS)
    return read_image(image, max_pixels=MAX_IMAGE_PIXELS)

"""The Generate tab's plain inputs checked and converted: whole numbers and numbers from UI fields (Gradio sends
floats), the sampler's settings, the seed and the start image. A bad value is a ValueError naming the field."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from demo.user_errors import named_by_file_name
from videogpt_core.video_io import read_image

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


def sampling_settings(temperature, top_k, top_p, guidance) -> dict:
    """UI values -> the sampler's keyword arguments. top_k 0 and guidance 1 mean off; the sampler checks
    the ranges (and its ValueError becomes the user's message)."""
    settings = {"temperature": real_number(temperature, "temperature"), "top_k": None, "top_p": None,
                "cfg_scale": None}
    if top_k is not None and real_number(top_k, "top-k") != 0:
        top_k = real_number(top_k, "top-k")
        # A fraction, NaN or inf is passed on as it is: the sampler's message refuses it.
        settings["top_k"] = int(top_k) if math.isfinite(top_k) and top_k == int(top_k) else top_k
    if top_p is not None:
        settings["top_p"] = real_number(top_p, "top-p")
    if guidance is not None and real_number(guidance, "guidance scale") != 1.0:
        settings["cfg_scale"] = real_number(guidance, "guidance scale")
    return settings


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

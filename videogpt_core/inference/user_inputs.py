"""A user's inputs to a generation, checked and converted for a prior: whole numbers, first frames (an image or
a clip of any size), a class (a name or an index) and one action row per frame within the trained range. The
errors say what to give instead; the pipeline turns the results into `Conditions`."""
from __future__ import annotations

import numbers

import numpy as np
import torch

from videogpt_core.data.transforms import resize_center_crop, to_model_video
from videogpt_core.models.action_range import check_actions_in_range


def whole_number(value, name: str, low: int, high: int | None = None) -> int:
    """An int from any integer type (numpy's too); bools, fractions and strings are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be a whole number >= {low}, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"between {low} and {high}"
        raise ValueError(f"{name} must be a whole number {bound}, got {value!r}")
    return int(value)


def model_frames(frames, resolution: int) -> torch.Tensor:
    """uint8 image (H, W, 3) / video (K, H, W, 3) of any size -> (1, 3, K, res, res) in [-0.5, 0.5]."""
    array = np.asarray(frames)
    if array.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 images (H, W, 3) or a video (K, H, W, 3); got {array.dtype}")
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[-1] != 3 or 0 in array.shape:
        raise ValueError(f"frames must be an RGB image (H, W, 3) or a video (K, H, W, 3); got {array.shape}")
    return to_model_video(resize_center_crop(array, resolution))[None]


def class_names(config) -> list[str]:
    return list(config.class_names) if config.class_names else [str(i) for i in range(config.n_classes)]


def class_index(label, config) -> int:
    """A class name or a whole-number index (also as a string) -> the class index."""
    if not config.n_classes:
        raise ValueError("label given, but this model is not class-conditional")
    names = class_names(config)
    if isinstance(label, str) and not label.lstrip("-").isdigit():
        if label not in names:
            raise ValueError(f"label {label!r} is not one of this model's classes: {names}")
        return names.index(label)
    if isinstance(label, bool) or not isinstance(label, (str, numbers.Integral)):
        # 7.9 or True would silently become class 7 or 1.
        raise ValueError(f"label must be a class name or a whole-number index, got {label!r}; this model's "
                         f"classes: {names}")
    index = int(label)
    if not 0 <= index < config.n_classes:
        raise ValueError(f"label {index} is out of range: this model has classes 0..{config.n_classes - 1}")
    return index


def action_rows(actions, n_frames: int, config) -> torch.Tensor:
    """One row of numbers per frame -> float32 (n_frames, action_dim), finite and within the trained range."""
    if not config.action_dim:
        raise ValueError("actions given, but this model is not action-conditional")
    try:
        array = np.asarray(actions, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"actions must be numbers: one row of {config.action_dim} values per output frame") from None
    if array.ndim != 2 or array.shape != (n_frames, config.action_dim):
        raise ValueError(f"actions must have shape ({n_frames}, {config.action_dim}) - one row per output "
                         f"frame; got {array.shape}")
    if not np.isfinite(array).all():  # before the range check, whose message would name the value
        raise ValueError("actions contain NaN or infinite values")
    check_actions_in_range(array, config.action_range)
    return torch.from_numpy(array)

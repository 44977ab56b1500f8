"""The range of actions a prior was trained on: recorded from the training data, enforced at sampling.

Far outside that range the conditional LayerNorms saturate (dx = 1e6 gives NaN logits, every code 0 and a
flat-colour video; even 3x the trained range degrades the rollout), so such actions are refused with a
message that states the range instead of being sampled silently.
"""
from __future__ import annotations

import numpy as np

# Actions are stored as float32: a value that was clipped to the bound in float64 may sit just past it.
RELATIVE_TOLERANCE = 1e-5


def action_range_of(dataset) -> list[list[float]] | None:
    """[low, high] of each action dimension over a training data set's actions, or None when it has none.

    Reads a code cache's actions array in one pass (memory-mapped); any other data set is walked item by item.
    """
    arrays = getattr(dataset, "arrays", None)
    if isinstance(arrays, dict) and "actions" in arrays:
        actions = np.asarray(arrays["actions"], dtype=np.float64)
    else:
        rows = [np.asarray(item["actions"], dtype=np.float64) for item in dataset if "actions" in item]
        if not rows:
            return None
        actions = np.stack(rows)
    actions = actions.reshape(-1, actions.shape[-1])
    if not len(actions):
        return None
    return [[float(low), float(high)] for low, high in zip(actions.min(0), actions.max(0))]


def check_actions_in_range(actions: np.ndarray, action_range: list[list[float]] | None,
                           column_names: list[str] | None = None) -> None:
    """Raise a ValueError naming the first row and column outside the trained range (and the range)."""
    if action_range is None:
        return
    bounds = np.asarray(action_range, dtype=np.float64)  # (action_dim, 2)
    slack = RELATIVE_TOLERANCE * np.maximum(1.0, np.abs(bounds))
    low, high = bounds[:, 0] - slack[:, 0], bounds[:, 1] + slack[:, 1]
    outside = (actions < low) | (actions > high)
    if not outside.any():
        return
    names = column_names or [f"column {i + 1}" for i in range(len(bounds))]
    row, column = (int(i) for i in np.argwhere(outside)[0])
    ranges = ", ".join(f"{name} in [{lo:g}, {hi:g}]" for name, (lo, hi) in zip(names, bounds))
    raise ValueError(f"action row {row + 1}, {names[column]} = {float(actions[row, column]):g} is outside the range "
                     f"this model was trained on ({ranges}); give actions within it")


__all__ = ["action_range_of", "check_actions_in_range"]

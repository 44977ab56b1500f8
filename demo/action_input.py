"""The action editor: a table with one row per frame and its text form ('3,0; 3,0 x4'), parsed into
(T, action_dim) float32 arrays (errors name the bad row or entry) and written back; presets fill both."""
from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from demo.action_presets import action_column_names, preset_actions
from demo.input_checks import whole_number
from demo.user_errors import user_errors


def _cell(value, row: int, column: str) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"action row {row}, column {column} is empty; give a number (0 for no move)")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"action row {row}, column {column}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"action row {row}, column {column}: {value!r} is not a finite number")
    return number


def actions_from_table(table, action_dim: int) -> np.ndarray:
    """The action editor's rows (DataFrame, list of rows, array or {'data': rows}) -> (T, action_dim) float32."""
    if table is None:
        raise ValueError("no actions given: fill the action table (one row per frame) or use a preset")
    if isinstance(table, dict):
        table = table.get("data", [])
    rows = table.values.tolist() if isinstance(table, pd.DataFrame) else np.asarray(table, dtype=object).tolist()
    if not isinstance(rows, list) or not rows or not isinstance(rows[0], list):
        raise ValueError("no actions given: fill the action table (one row per frame) or use a preset")
    names = action_column_names(action_dim)
    actions = np.zeros((len(rows), action_dim), dtype=np.float32)
    for i, row in enumerate(rows):
        if len(row) != action_dim:
            raise ValueError(f"action row {i + 1} has {len(row)} values; this model takes {action_dim} per frame "
                             f"({', '.join(names)})")
        actions[i] = [_cell(value, i + 1, names[j]) for j, value in enumerate(row)]
    return actions


def actions_table(actions: np.ndarray, world: str | None = None) -> pd.DataFrame:
    # Rounded in float64: float32's 2.28 would be shown as 2.2799999713897705.
    actions = np.asarray(actions, dtype=np.float64).round(3)
    return pd.DataFrame(actions, columns=action_column_names(actions.shape[1], world))


_REPEAT = re.compile(r"^(?P<entry>.*?)\s*[x*×]\s*(?P<count>\d+)$")


def parse_actions_text(text: str | None, action_dim: int) -> np.ndarray:
    """'3,0; 3,0; 0,2' (entries split by ';' or new lines, values by ',' or spaces; 'dx,dy x4' repeats an
    entry) -> (T, action_dim) float32. The error names the bad entry."""
    names = ",".join(action_column_names(action_dim))
    entries = [e.strip() for e in re.split(r"[;\n]", text or "") if e.strip()]
    if not entries:
        raise ValueError(f"no actions in the text: write one {names} entry per frame, e.g. '3,0; 3,0; 0,2' "
                         "('3,0 x4' repeats an entry)")
    rows: list[list[float]] = []
    for number, entry in enumerate(entries, start=1):
        body, count = entry, 1
        match = _REPEAT.match(entry)
        if match:
            body, count = match.group("entry"), int(match.group("count"))
            if not 1 <= count <= 1000:
                raise ValueError(f"action entry {number} ({entry!r}): the repeat count must be 1-1000")
        values = [v for v in re.split(r"[,\s]+", body.strip()) if v]
        if len(values) != action_dim:
            raise ValueError(f"action entry {number} ({entry!r}) has {len(values)} value(s); this model takes "
                             f"{action_dim} per frame ({names})")
        row = []
        for value in values:
            try:
                number_value = float(value)
            except ValueError:
                raise ValueError(f"action entry {number} ({entry!r}): {value!r} is not a number") from None
            if not math.isfinite(number_value):
                raise ValueError(f"action entry {number} ({entry!r}): {value!r} is not a finite number")
            row.append(number_value)
        rows.extend([row] * count)
    return np.asarray(rows, dtype=np.float32)


def actions_to_text(actions: np.ndarray) -> str:
    """The compact text form of (T, action_dim) actions, runs of equal rows written as 'dx,dy xN'."""
    parts: list[str] = []
    rows = [",".join(f"{v:g}" for v in np.asarray(row, dtype=np.float64).round(3)) for row in actions]
    i = 0
    while i < len(rows):
        j = i
        while j + 1 < len(rows) and rows[j + 1] == rows[i]:
            j += 1
        parts.append(rows[i] if j == i else f"{rows[i]} x{j - i + 1}")
        i = j + 1
    return "; ".join(parts)


def resized_actions(table, n_frames: int, action_dim: int) -> np.ndarray:
    """The table's rows cut or padded (with zeros: no move) to n_frames; a broken table starts over."""
    try:
        actions = actions_from_table(table, action_dim)
    except ValueError:
        actions = np.zeros((0, action_dim), dtype=np.float32)
    if len(actions) >= n_frames:
        return actions[:n_frames]
    return np.concatenate([actions, np.zeros((n_frames - len(actions), action_dim), dtype=np.float32)])


@user_errors
def apply_actions_text(text: str | None, action_dim: int, world: str | None = None) -> pd.DataFrame:
    """The text form parsed into the action table (the error names the bad entry)."""
    if not action_dim:
        raise ValueError("this model takes no actions")
    return actions_table(parse_actions_text(text, action_dim), world)


@user_errors
def apply_preset(name: str, n_frames, action_dim: int, seed=0, world: str | None = None,
                 action_range: list[list[float]] | None = None) -> tuple[pd.DataFrame, str]:
    frames = whole_number(n_frames, "number of frames", 1, 10_000)
    seed = whole_number(seed, "seed", 0, 2**63 - 1) if seed is not None else 0
    actions = preset_actions(name, frames, action_dim, seed % (2**32), world, action_range)
    return actions_table(actions, world), actions_to_text(actions)

"""demo/action_input.py: the action table and its text form parsed (errors name the bad row or entry), written
back, resized with the frame count; the presets that fill them (demo/action_presets.py)."""
from __future__ import annotations

import gradio as gr
import numpy as np
import pandas as pd
import pytest

from demo.action_input import (actions_from_table, actions_table, actions_to_text, apply_actions_text,
                               parse_actions_text, resized_actions)
from demo.action_presets import ACTION_PRESETS, preset_actions


def test_parse_actions_text_forms():
    assert parse_actions_text("3,0; 3,0; 0,2", 2).tolist() == [[3, 0], [3, 0], [0, 2]]
    assert parse_actions_text("1 -1\n0.5 2", 2).tolist() == [[1, -1], [0.5, 2]]
    assert parse_actions_text("2,0 x3; 0,1", 2).tolist() == [[2, 0]] * 3 + [[0, 1]]


@pytest.mark.parametrize("text, message", [
    ("3,0; 3,a; 0,2", "entry 2 \\('3,a'\\): 'a' is not a number"),
    ("3,0; 1,2,3", "entry 2 \\('1,2,3'\\) has 3 value"),
    ("", "no actions in the text"),
    ("1,inf", "not a finite number"),
    ("1,0 x0", "repeat count"),
])
def test_parse_actions_text_errors_name_the_entry(text, message):
    with pytest.raises(ValueError, match=message):
        parse_actions_text(text, 2)
    with pytest.raises(gr.Error, match=message):
        apply_actions_text(text, 2)


def test_actions_text_round_trip():
    actions = preset_actions("zigzag", 12)
    text = actions_to_text(actions)
    assert " x" in text  # runs are compressed
    assert np.allclose(parse_actions_text(text, 2), actions)


def test_actions_from_table_accepts_every_shape_gradio_sends():
    rows = [[1, 2], [3, 4]]
    expected = np.asarray(rows, np.float32)
    for table in (pd.DataFrame(rows, columns=["dx", "dy"]), rows, np.asarray(rows), {"headers": ["dx", "dy"],
                                                                                     "data": rows}):
        assert np.array_equal(actions_from_table(table, 2), expected)
    with pytest.raises(ValueError, match="row 2 has 3 values"):
        actions_from_table([[1, 2], [1, 2, 3]], 2)
    with pytest.raises(ValueError, match="row 1, column dx is empty"):
        actions_from_table([["", 1]], 2)
    with pytest.raises(ValueError, match="not a finite number"):
        actions_from_table([[float("nan"), 1]], 2)


def test_presets():
    tables = {name: preset_actions(name, 16, 2, seed=1) for name in ACTION_PRESETS}
    for name, actions in tables.items():
        assert actions.shape == (16, 2) and actions.dtype == np.float32
        assert np.all(actions[0] == 0), name  # frame 0 is the start
        assert np.all(np.hypot(actions[:, 0], actions[:, 1]) <= 2.5 + 0.01), name  # rounded to 2 decimals
    assert np.all(tables["still"] == 0)
    assert np.all(tables["push right"][1:, 0] > 0) and np.all(tables["push right"][:, 1] == 0)
    assert len({tables[name].tobytes() for name in ACTION_PRESETS}) == len(ACTION_PRESETS)
    assert preset_actions("circle", 5, action_dim=3)[:, 2].tolist() == [0.0] * 5
    with pytest.raises(ValueError, match="unknown action preset"):
        preset_actions("moonwalk", 4)


def test_world_presets_are_the_worlds_controls():
    from demo.action_presets import action_column_names, presets_for
    from videogpt_core.data.worlds.controls import fetchpush_controls

    assert presets_for("vizdoom")[:4] == ("turn left", "turn right", "walk forward", "loop")
    assert action_column_names(3, "vizdoom") == ["TURN_LEFT", "TURN_RIGHT", "MOVE_FORWARD"]
    turn = preset_actions("turn left", 6, 3, world="vizdoom")
    assert turn[0].tolist() == [0, 0, 0] and turn[1:].tolist() == [[1, 0, 0]] * 5  # multi-hot buttons
    assert preset_actions("loop", 3, 3, world="vizdoom")[2].tolist() == [0, 1, 1]  # forward while turning right
    rolls = {seed: preset_actions("random", 16, 3, seed, world="vizdoom").tobytes() for seed in range(4)}
    assert len(set(rolls.values())) > 1

    assert presets_for("fetchpush")[:4] == ("push left", "push right", "push towards", "push away")
    left = preset_actions("push left", 4, 4, world="fetchpush")
    assert np.allclose(left[1:], fetchpush_controls().row(["left"])) and np.all(left[:, 3] == -1)  # gripper shut
    assert np.allclose(preset_actions("push away", 4, 4, world="fetchpush")[1:], fetchpush_controls().row(["up"]))
    with pytest.raises(ValueError, match="push left"):
        preset_actions("circle", 4, 4, world="fetchpush")
    # A model of another shape than the world's gets the 2-D moves.
    assert preset_actions("push right", 4, 2, world=None)[1, 0] == 2.5


def test_resized_actions_keeps_rows_and_pads_with_still():
    table = actions_table(np.ones((3, 2), np.float32))
    assert resized_actions(table, 5, 2).tolist() == [[1, 1]] * 3 + [[0, 0]] * 2
    assert resized_actions(table, 2, 2).tolist() == [[1, 1]] * 2
    assert resized_actions(None, 2, 2).tolist() == [[0, 0]] * 2

"""The worlds' keyboard controls: key -> action rows, and which controls a model gets."""
from __future__ import annotations

import math

import numpy as np
import pytest

from videogpt_core.data.worlds.controls import (PUSHER_SPEED, controls_for, fetchpush_controls, generic_controls,
                                                pusher_controls, vizdoom_controls, world_of_model)
from videogpt_core.data.worlds.vizdoom import SCENARIOS


def test_pusher_rows():
    controls = pusher_controls()
    np.testing.assert_array_equal(controls.row([]), [0, 0])  # no key: the no-op
    np.testing.assert_allclose(controls.row(["right"]), [PUSHER_SPEED, 0])
    np.testing.assert_allclose(controls.row(["up"]), [0, -PUSHER_SPEED])  # image y points down
    diagonal = controls.row(["up", "right"])
    assert math.isclose(float(np.hypot(*diagonal)), PUSHER_SPEED, rel_tol=1e-6)  # as fast as a straight move
    np.testing.assert_array_equal(controls.row(["left", "right"]), [0, 0])
    np.testing.assert_array_equal(controls.row(["right", "right"]), controls.row(["right"]))
    assert controls.rows([["right"], [], ["down"]]).shape == (3, 2)
    keys = {key for control in controls.controls for key in control.keys}
    assert {"ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "a", "d", "w", "s"} <= keys
    with pytest.raises(ValueError, match="unknown control.*jump.*left"):
        controls.row(["jump"])


def test_vizdoom_rows_follow_the_scenario_buttons():
    maze = vizdoom_controls(SCENARIOS["health_gathering_supreme"].buttons)
    assert maze.names == ("left", "right", "up")  # no backward, no attack button in this scenario
    np.testing.assert_array_equal(maze.row(["up", "left"]), [1, 0, 1])
    freedoom = controls_for("vizdoom", 4)
    assert freedoom.names == ("left", "right", "up", "extra")
    np.testing.assert_array_equal(freedoom.row(["extra"]), [0, 0, 0, 1])  # Space attacks
    assert any(" " in control.keys for control in freedoom.controls)
    np.testing.assert_array_equal(freedoom.row([]), [0, 0, 0, 0])


def test_fetchpush_rows():
    controls = fetchpush_controls()
    np.testing.assert_array_equal(controls.row([]), [0, 0, 0, -1])  # the gripper stays closed
    np.testing.assert_array_equal(controls.row(["extra"])[3], 1)  # Space opens it
    up = controls.row(["up"])
    assert up[0] < -0.9 and 0.3 < up[1] < 0.4  # screen up is about -x for the camera at azimuth 160
    assert math.isclose(float(np.hypot(*controls.row(["up", "right"])[:2])), 1.0, rel_tol=1e-6)
    assert (np.abs(controls.row(["up", "right", "raise", "extra"])) <= 1).all()


def test_models_get_their_world_controls():
    assert world_of_model("pusher") == "pusher" and world_of_model("pusher-tiny") == "pusher"
    assert world_of_model("vizdoom-freedoom") == "vizdoom" and world_of_model("pushers") is None
    assert controls_for("pusher", 2).world == "pusher"
    assert controls_for("fetchpush", 4).world == "fetchpush"
    other = controls_for(None, 3, [[-1, 1], [0, 2], [-5, 5]])
    assert other.world == "generic" and other.names == ("left", "right", "up", "down")
    np.testing.assert_allclose(other.row(["right", "down"]), [0.8, 1.6, 0])
    np.testing.assert_allclose(other.row([]), [0, 0, 0])
    with pytest.raises(ValueError, match="no controls"):
        generic_controls(None, 0)


def test_every_control_table_is_shown():
    for controls in (pusher_controls(), fetchpush_controls(), controls_for("vizdoom", 4)):
        rows = controls.describe()
        assert len(rows) == len(controls.controls) and all(all(cell for cell in row) for row in rows)


def test_rows_stay_inside_the_models_action_range():
    # FetchPush episodes are recorded with the gripper closed (-1..0): a model trained on them refuses +1.
    trained = [[-1.0, 1.0], [-1.0, 1.0], [-1.0, 1.0], [-1.0, 0.0]]
    controls = controls_for("fetchpush", 4, trained)
    assert controls.row(["extra"])[3] == 0.0 and controls.row([])[3] == -1.0
    assert fetchpush_controls().row(["extra"])[3] == 1.0  # the world itself allows a fully open gripper
    for held in (["left", "up", "extra"], ["raise"], []):
        row = controls.row(held)
        assert all(low <= value <= high for value, (low, high) in zip(row, trained, strict=True))

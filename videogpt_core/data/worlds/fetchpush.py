"""`fetchpush`: a Fetch robot arm pushing a block on a table, simulated by MuJoCo (Gymnasium-Robotics'
FetchPush-v4; `gymnasium-robotics` and `mujoco` are an optional extra), seen from above at 64x64.

The block is painted red and the gripper's hand magenta so both can be found by colour (the robot's red
emergency-stop button is painted grey); the goal marker is hidden. actions[j] is the 4-number FetchPush command (dx, dy, dz, gripper) in [-1, 1] that moved the world
from frame j-1 to frame j (one simulator step, 0.04 s); actions[0] is zeros. positions[j] holds the (x, y)
pixel centres (pixel column c spans [c, c+1)) of the gripper's hand and of the block, projected from the
simulator with the camera's own matrices (the centre of the hand's lower half, the block's top face). A seed fixes the block's start, so `replay_fetchpush(seed,
actions)` renders the same frames byte for byte.
"""
from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .optional_packages import import_world_package
from .simulators import simulator

FRAME_SIZE = 64
ENV_ID = "FetchPush-v4"
CAMERA = {"distance": 1.0, "azimuth": 160.0, "elevation": -50.0, "lookat": (1.3, 0.75, 0.42)}
BLOCK_RGBA = (0.85, 0.08, 0.08, 1.0)
GRIPPER_RGBA = (0.85, 0.1, 0.85, 1.0)
THINGS = ("gripper", "block")  # positions columns
_BLOCK_GEOM = "object0"
_GRIPPER_GEOM = "robot0:gripper_link"  # the hand seen from above; the fingers hide under it
_ESTOP_GEOM = "robot0:estop_link"
_GRIP_SITE = "robot0:grip"  # the point between the fingertips: what the policy steers
_POLICY_SALT = 0xF37C


@dataclass(frozen=True)
class FetchPushEpisode:
    seed: int
    frames: np.ndarray  # (T, 64, 64, 3) uint8
    actions: np.ndarray  # (T, 4) float32, actions[0] = 0
    positions: np.ndarray  # (T, 2, 2) float32 pixel (x, y): gripper, block


class _FetchPushSimulator:
    """One FetchPush environment per process (making one and its first render take ~2 s), reset per episode
    (see simulators.py for when it is closed)."""

    def __init__(self):
        os.environ.setdefault("MUJOCO_GL", "egl")  # offscreen rendering without a display
        gym = import_world_package("gymnasium", "fetchpush")
        with contextlib.redirect_stderr(io.StringIO()):  # its import prints a notice about the Adroit hand tasks
            robotics = import_world_package("gymnasium_robotics", "fetchpush")
        self.mujoco = import_world_package("mujoco", "fetchpush")
        gym.register_envs(robotics)
        camera = dict(CAMERA, lookat=np.array(CAMERA["lookat"]))
        self.env = gym.make(ENV_ID, render_mode="rgb_array", width=FRAME_SIZE, height=FRAME_SIZE,
                            default_camera_config=camera).unwrapped  # no time limit: our episodes set their length
        model = self.env.model
        geom = lambda name: self.mujoco.mj_name2id(model, self.mujoco.mjtObj.mjOBJ_GEOM, name)  # noqa: E731
        self.block_geom, self.gripper_geom = geom(_BLOCK_GEOM), geom(_GRIPPER_GEOM)
        for index, rgba in ((self.block_geom, BLOCK_RGBA), (self.gripper_geom, GRIPPER_RGBA)):
            model.geom_matid[index] = -1  # the geom's own colour instead of its material's
            model.geom_rgba[index] = rgba
        model.site_rgba[:, 3] = 0.0  # hide the goal marker (and the other sites)
        estop = geom(_ESTOP_GEOM)  # the robot's red emergency-stop button: grey, so red means the block
        model.geom_matid[estop], model.geom_rgba[estop] = -1, (0.356, 0.361, 0.376, 1.0)
        mocap_body = self.mujoco.mj_name2id(model, self.mujoco.mjtObj.mjOBJ_BODY, "robot0:mocap")
        model.geom_rgba[model.geom_bodyid == mocap_body, 3] = 0.0  # and the mocap target's see-through boxes
        self.grip_site = self.mujoco.mj_name2id(model, self.mujoco.mjtObj.mjOBJ_SITE, _GRIP_SITE)
        # The first render starts the OpenGL context (and registers its own clean-up at exit): done here, so
        # the simulator is closed before that clean-up runs (simulators.py).
        self.reset(0)

    def reset(self, seed: int) -> np.ndarray:
        self.env.reset(seed=int(seed))
        return self.env.render()

    def step(self, action: np.ndarray) -> np.ndarray:
        self.env.step(action)
        return self.env.render()

    def grip(self) -> np.ndarray:
        return self.env.data.site_xpos[self.grip_site].copy()

    def block(self) -> np.ndarray:
        return self.env.data.geom_xpos[self.block_geom].copy()

    def pixel_positions(self) -> np.ndarray:
        """(2, 2) float32: what the camera sees of the gripper's hand (the centre of its lower half: the wrist
        covers the top) and of the block (its top face's centre), projected into the last rendered frame."""
        data, sizes = self.env.data, self.env.model.geom_size  # box half-sizes
        hand_low = data.geom_xpos[self.gripper_geom] - [0.0, 0.0, 0.5 * sizes[self.gripper_geom][2]]
        block_top = data.geom_xpos[self.block_geom] + [0.0, 0.0, sizes[self.block_geom][2]]
        points = np.stack([hand_low, block_top])
        return project_points(self._camera(), points, FRAME_SIZE, FRAME_SIZE).astype(np.float32)

    def _camera(self):
        # The camera of the scene MuJoCo just rendered (position, axes and frustum): the scene holds a left and
        # a right eye (half the inter-pupillary distance to either side); a mono image is seen from between them.
        cameras = self.env.mujoco_renderer._get_viewer("rgb_array").scn.camera
        return self.mujoco.mjv_averageCamera(cameras[0], cameras[1])


def project_points(camera, points: np.ndarray, width: int, height: int) -> np.ndarray:
    """World points (n, 3) -> (n, 2) pixel (x, y) with a MuJoCo mjvGLCamera (pos, forward, up, frustum).
    A frustum_width of 0 means the width follows the image's aspect ratio, as MuJoCo renders it."""
    forward, up = np.asarray(camera.forward, np.float64), np.asarray(camera.up, np.float64)
    right = np.cross(forward, up)
    offsets = np.asarray(points, np.float64) - np.asarray(camera.pos, np.float64)
    depth = offsets @ forward
    near = camera.frustum_near
    x_near, y_near = (offsets @ right) * near / depth, (offsets @ up) * near / depth
    half_height = 0.5 * (camera.frustum_top - camera.frustum_bottom)
    half_width = camera.frustum_width or half_height * width / height
    left = camera.frustum_center - half_width
    x = (x_near - left) / (2 * half_width) * width
    y = (camera.frustum_top - y_near) / (camera.frustum_top - camera.frustum_bottom) * height
    return np.stack([x, y], axis=-1)


def _simulator() -> _FetchPushSimulator:
    return simulator("fetchpush", _start_simulator)


def _start_simulator() -> tuple[_FetchPushSimulator, Callable[[], None]]:
    started = _FetchPushSimulator()
    return started, started.env.close


class PushingPolicy:
    """Scripted pushes with noise: pick a direction, go above the spot behind the block, come down, push
    through the block for a while, lift, and pick a new direction. Directions lean towards the camera (away
    from the robot), so the hand approaches from behind the block as the camera sees it, and towards the
    middle of the view, so the block stays in it."""

    TABLE_CENTRE = np.array([1.38, 0.75])
    MAX_ANGLE = np.radians(100)  # push directions within this angle of +x (towards the camera)
    BLOCK_HEIGHT = 0.425  # the block's centre when it rests on the table
    SPEED = 0.7  # of the largest command: about 3.5 cm per step

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.phase, self.steps_left, self.direction = "choose", 0, np.zeros(2)

    def _choose(self, block: np.ndarray) -> None:
        towards_middle = self.TABLE_CENTRE - block[:2]  # metres; the block starts within 15 cm of (1.34, 0.75)
        # Mostly towards the camera (+x): the hand then comes from the block's far side and does not hide it.
        angle = float(self.rng.uniform(-self.MAX_ANGLE, self.MAX_ANGLE))
        direction = np.array([np.cos(angle), np.sin(angle)]) + 5.0 * towards_middle
        self.direction = direction / (np.linalg.norm(direction) + 1e-9)
        self.phase = "above"

    def act(self, grip: np.ndarray, block: np.ndarray) -> np.ndarray:
        if self.phase == "choose":
            self._choose(block)
        behind = block[:2] - 0.07 * self.direction
        if self.phase == "above":
            target = np.array([*behind, self.BLOCK_HEIGHT + 0.08])
            if np.linalg.norm(grip[:2] - behind) < 0.02:
                self.phase = "down"
        elif self.phase == "down":
            target = np.array([*behind, self.BLOCK_HEIGHT])
            if abs(grip[2] - self.BLOCK_HEIGHT) < 0.015:
                self.phase, self.steps_left = "push", int(self.rng.integers(5, 12))
        elif self.phase == "push":
            target = np.array([*(grip[:2] + 0.05 * self.direction), self.BLOCK_HEIGHT])
            self.steps_left -= 1
            if self.steps_left <= 0 or np.linalg.norm(block[:2] - grip[:2]) > 0.12:
                self.phase = "lift"
        else:  # lift clear of the block before the next approach
            target = np.array([*grip[:2], self.BLOCK_HEIGHT + 0.08])
            if grip[2] > self.BLOCK_HEIGHT + 0.06:
                self.phase = "choose"
        move = (target - grip) / 0.05  # commands are 5 cm per unit
        move = np.clip(move, -1, 1) * self.SPEED + self.rng.normal(0, 0.12, size=3)
        return np.append(np.clip(move, -1, 1), -1.0)  # gripper closed: a compact pusher


def _record(simulator: _FetchPushSimulator, seed: int, n_frames: int, actions: np.ndarray | None) -> FetchPushEpisode:
    frames = np.zeros((n_frames, FRAME_SIZE, FRAME_SIZE, 3), dtype=np.uint8)
    positions = np.zeros((n_frames, len(THINGS), 2), dtype=np.float32)
    recorded = np.zeros((n_frames, 4), dtype=np.float32)
    policy = PushingPolicy(np.random.default_rng((_POLICY_SALT, int(seed)))) if actions is None else None
    frames[0] = simulator.reset(seed)
    positions[0] = simulator.pixel_positions()
    for j in range(1, n_frames):
        # Store exactly what is applied: float32, clipped to the action space.
        command = policy.act(simulator.grip(), simulator.block()) if policy is not None else actions[j]
        recorded[j] = np.clip(np.asarray(command, dtype=np.float32), -1, 1)
        frames[j] = simulator.step(recorded[j].astype(np.float64))
        positions[j] = simulator.pixel_positions()
    return FetchPushEpisode(int(seed), frames, recorded, positions)


def generate_fetchpush_episode(seed: int, n_frames: int = 32) -> FetchPushEpisode:
    """One episode of the scripted pusher; identical to replay_fetchpush(seed, episode.actions)."""
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    return _record(_simulator(), seed, n_frames, None)


def replay_fetchpush(seed: int, actions: np.ndarray) -> FetchPushEpisode:
    """Apply `actions` (T, 4) from the start `seed` fixes; actions[0] is ignored (frame 0 is the start) and
    commands are clipped to [-1, 1], as the returned episode's actions show."""
    actions = np.asarray(actions, dtype=np.float32)
    if actions.ndim != 2 or actions.shape[1] != 4 or len(actions) < 1:
        raise ValueError(f"actions must have shape (T, 4) (dx, dy, dz, gripper) with T >= 1, got {actions.shape}")
    return _record(_simulator(), seed, len(actions), actions)

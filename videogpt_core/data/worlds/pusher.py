"""`pusher`: a BAIR-like top-down table where an action-driven gripper pushes 1-3 coloured discs.

Coordinates are pixels, x to the right and y down; pixel column j spans [j, j+1), so its centre is j + 0.5.
actions[j] is the (dx, dy) command that moved the world from frame j-1 to frame j; actions[0] is zeros.
"""
from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np

FRAME_SIZE = 64
WALL_PX = 2  # the table's rim; nothing may enter it
GRIPPER_RADIUS = 5.0
GRIPPER_CORE_RADIUS = 3.5  # the dark body inside the light rim
MAX_SPEED = 3.0  # largest gripper displacement per frame (Euclidean norm), in pixels
MAX_OBJECTS = 3
OBJECT_RADIUS_RANGE = (4.0, 6.0)
SLIDE_FACTOR = 0.5  # a pushed object keeps this fraction of its last displacement (friction)
_COLLISION_ITERATIONS = 4

# Saturated colours, far from the (desaturated) table and the grey gripper, so objects can be found by colour.
OBJECT_PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 45, 45),
    "green": (40, 185, 70),
    "blue": (55, 90, 230),
    "yellow": (240, 205, 35),
}
GRIPPER_BODY_COLOUR = (45, 45, 50)
GRIPPER_RIM_COLOUR = (228, 228, 232)

_SCENE_SALT = 0x5055  # seeds the scene stream; the policy stream uses a different tag
_POLICY_SALT = 0x5056


@dataclass(frozen=True)
class PusherScene:
    """Everything a seed fixes: the table, the objects and where everything starts."""

    seed: int
    table: np.ndarray  # (64, 64, 3) float32 in [0, 255]
    object_colours: np.ndarray  # (n, 3) uint8
    object_radii: np.ndarray  # (n,) float64
    initial_positions: np.ndarray  # (1 + n, 2) float64, gripper first

    @property
    def n_objects(self) -> int:
        return len(self.object_radii)


@dataclass(frozen=True)
class PusherEpisode:
    seed: int
    frames: np.ndarray  # (T, 64, 64, 3) uint8
    actions: np.ndarray  # (T, 2) float32, actions[0] = 0
    positions: np.ndarray  # (T, 1 + n, 2) float32, (x, y) pixel centres, gripper first
    object_colours: np.ndarray  # (n, 3) uint8


def _smooth_basis(n_controls: int, width_fraction: float = 0.6) -> np.ndarray:
    """(64, n_controls) row-normalised Gaussian bumps: basis @ grid @ basis.T is a smooth image."""
    pixel_centres = np.arange(FRAME_SIZE) + 0.5
    control_centres = (np.arange(n_controls) + 0.5) * FRAME_SIZE / n_controls
    width = width_fraction * FRAME_SIZE / n_controls
    basis = np.exp(-0.5 * ((pixel_centres[:, None] - control_centres[None, :]) / width) ** 2)
    return basis / basis.sum(axis=1, keepdims=True)


_TEXTURE_BASIS = _smooth_basis(4)


def _make_table(rng: np.random.Generator) -> np.ndarray:
    """A desaturated table with low-frequency brightness/tint variation and a lighter rim."""
    hue = rng.uniform(0.0, 1.0)
    saturation = rng.uniform(0.08, 0.28)
    value = rng.uniform(0.58, 0.78)
    base = np.array(colorsys.hsv_to_rgb(hue, saturation, value)) * 255.0
    brightness = _TEXTURE_BASIS @ rng.normal(size=(4, 4)) @ _TEXTURE_BASIS.T  # (64, 64), smooth
    tint = np.stack([_TEXTURE_BASIS @ grid @ _TEXTURE_BASIS.T for grid in rng.normal(size=(3, 4, 4))], axis=-1)
    # Normalise the fields so the texture strength does not depend on the draw.
    brightness *= 0.10 / (np.abs(brightness).max() + 1e-8)
    tint *= 0.03 / (np.abs(tint).max() + 1e-8)
    table = base[None, None, :] * (1.0 + brightness[..., None]) + 255.0 * tint
    rim = np.zeros((FRAME_SIZE, FRAME_SIZE), dtype=bool)
    rim[:WALL_PX, :] = rim[-WALL_PX:, :] = rim[:, :WALL_PX] = rim[:, -WALL_PX:] = True
    table[rim] = 0.55 * base + 0.45 * 255.0
    return np.clip(table, 0, 255).astype(np.float32)


def make_scene(seed: int) -> PusherScene:
    """The table, objects and initial positions that `seed` fixes (independent of any actions)."""
    rng = np.random.default_rng((_SCENE_SALT, int(seed)))
    table = _make_table(rng)
    n_objects = int(rng.integers(1, MAX_OBJECTS + 1))
    palette = np.array(list(OBJECT_PALETTE.values()), dtype=np.uint8)
    object_colours = palette[rng.choice(len(palette), size=n_objects, replace=False)]
    object_radii = rng.uniform(*OBJECT_RADIUS_RANGE, size=n_objects)
    radii = np.concatenate([[GRIPPER_RADIUS], object_radii])
    positions = np.zeros((1 + n_objects, 2))
    # Rejection-sample non-overlapping starting places (with a gap, so nothing starts in contact).
    for index, radius in enumerate(radii):
        low, high = WALL_PX + radius + 1.0, FRAME_SIZE - WALL_PX - radius - 1.0
        for _ in range(1000):
            candidate = rng.uniform(low, high, size=2)
            gaps = np.linalg.norm(positions[:index] - candidate, axis=1) - radii[:index] - radius
            if np.all(gaps > 3.0):
                break
        positions[index] = candidate
    return PusherScene(int(seed), table, object_colours, object_radii, positions)


def clip_action(action: np.ndarray) -> np.ndarray:
    """Limit a (dx, dy) command to MAX_SPEED pixels (keeping its direction); returns float64 (2,)."""
    action = np.asarray(action, dtype=np.float64).reshape(2)
    speed = math.hypot(action[0], action[1])
    # The tolerance keeps an already-clipped float32 command unchanged, so replays are bit-identical.
    return action * (MAX_SPEED / speed) if speed > MAX_SPEED * (1 + 1e-6) else action


def _clamp(value: float, radius: float) -> float:
    low = WALL_PX + radius
    return min(max(value, low), FRAME_SIZE - low)


def _separation(mover: list[float], obstacle: list[float], min_distance: float) -> tuple[float, float]:
    """How far `mover` must move (away from `obstacle`) so the centres are min_distance apart."""
    dx, dy = mover[0] - obstacle[0], mover[1] - obstacle[1]
    distance = math.hypot(dx, dy)
    if distance >= min_distance:
        return 0.0, 0.0
    if distance < 1e-9:
        return min_distance, 0.0  # deterministic tie-break
    scale = (min_distance - distance) / distance
    return dx * scale, dy * scale


class PusherPhysics:
    """Quasi-static pushing: the gripper follows its commands, objects are shoved out of its way,
    slide a little (friction), push each other and stop at the walls; a blocked object blocks the gripper.

    Plain Python floats: with at most four bodies they are several times faster than tiny numpy arrays.
    """

    def __init__(self, scene: PusherScene):
        self.radii = [float(r) for r in scene.object_radii]
        self.gripper = [float(v) for v in scene.initial_positions[0]]
        self.objects = [[float(v) for v in point] for point in scene.initial_positions[1:]]
        self.velocities = [[0.0, 0.0] for _ in self.radii]

    def positions(self) -> np.ndarray:
        """(1 + n, 2) float64, gripper first."""
        return np.array([self.gripper, *self.objects], dtype=np.float64)

    def step(self, action: np.ndarray) -> None:
        dx, dy = clip_action(action)
        gripper = [_clamp(self.gripper[0] + dx, GRIPPER_RADIUS), _clamp(self.gripper[1] + dy, GRIPPER_RADIUS)]
        before = [point[:] for point in self.objects]
        objects = [[p[0] + v[0], p[1] + v[1]] for p, v in zip(self.objects, self.velocities)]
        radii, n = self.radii, len(self.radii)
        for _ in range(_COLLISION_ITERATIONS):
            for i in range(n):
                sx, sy = _separation(objects[i], gripper, GRIPPER_RADIUS + radii[i])
                objects[i][0] += sx
                objects[i][1] += sy
            for i in range(n):
                for j in range(i + 1, n):
                    sx, sy = _separation(objects[i], objects[j], radii[i] + radii[j])
                    objects[i][0] += 0.5 * sx
                    objects[i][1] += 0.5 * sy
                    objects[j][0] -= 0.5 * sx
                    objects[j][1] -= 0.5 * sy
            for point, radius in zip(objects, radii):
                point[0], point[1] = _clamp(point[0], radius), _clamp(point[1], radius)
        # Objects pinned against a wall (or each other) push the gripper back instead.
        for _ in range(_COLLISION_ITERATIONS):
            for i in range(n):
                sx, sy = _separation(gripper, objects[i], GRIPPER_RADIUS + radii[i])
                gripper[0], gripper[1] = gripper[0] + sx, gripper[1] + sy
            gripper = [_clamp(gripper[0], GRIPPER_RADIUS), _clamp(gripper[1], GRIPPER_RADIUS)]
        self.velocities = [
            [SLIDE_FACTOR * (p[0] - b[0]), SLIDE_FACTOR * (p[1] - b[1])] for p, b in zip(objects, before)
        ]
        self.gripper, self.objects = gripper, objects


def _paint_disc(canvas: np.ndarray, centres: np.ndarray, radius: float, colour: np.ndarray) -> None:
    """Blend an anti-aliased disc into each frame of canvas (T, 64, 64, 3), in place; centres (T, 2).

    Only a small patch around each disc is touched, which is what makes rendering cheap."""
    patch = int(math.ceil(2 * radius + 3))
    frames = np.arange(len(centres))[:, None, None]
    corners = np.clip(np.floor(centres - radius - 1).astype(np.int64), 0, FRAME_SIZE - patch)  # (T, 2) x, y
    offsets = np.arange(patch)
    cols = corners[:, 0, None] + offsets  # (T, P)
    rows = corners[:, 1, None] + offsets
    dx = cols[:, None, :] + 0.5 - centres[:, 0, None, None]  # (T, P, P)
    dy = rows[:, :, None] + 0.5 - centres[:, 1, None, None]
    coverage = np.clip(radius + 0.5 - np.sqrt(dx * dx + dy * dy), 0.0, 1.0)[..., None]
    index = (frames, rows[:, :, None], cols[:, None, :])
    canvas[index] += coverage * (colour - canvas[index])


def render_pusher_frames(scene: PusherScene, positions: np.ndarray) -> np.ndarray:
    """Draw (T, 1 + n, 2) positions (gripper first) on the scene's table -> (T, 64, 64, 3) uint8."""
    positions = np.asarray(positions, dtype=np.float32)
    if positions.ndim != 3 or positions.shape[1:] != (1 + scene.n_objects, 2):
        raise ValueError(
            f"positions must have shape (T, {1 + scene.n_objects}, 2) for this scene, got {positions.shape}"
        )
    canvas = np.broadcast_to(scene.table, (len(positions), FRAME_SIZE, FRAME_SIZE, 3)).copy()
    layers = [(positions[:, 1 + k], float(r), scene.object_colours[k]) for k, r in enumerate(scene.object_radii)]
    layers += [
        (positions[:, 0], GRIPPER_RADIUS, GRIPPER_RIM_COLOUR),
        (positions[:, 0], GRIPPER_CORE_RADIUS, GRIPPER_BODY_COLOUR),
    ]
    for centres, radius, colour in layers:
        _paint_disc(canvas, centres, radius, np.asarray(colour, dtype=np.float32))
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


def simulate_pusher(seed: int, actions: np.ndarray) -> PusherEpisode:
    """Replay `actions` (T, 2) from the first state that `seed` fixes; actions[0] is ignored (frame 0 is the
    start) and larger commands are clipped to MAX_SPEED, as the returned episode's actions show."""
    return simulate_from_scene(make_scene(seed), actions)


def simulate_from_scene(scene: PusherScene, actions: np.ndarray) -> PusherEpisode:
    """Like simulate_pusher, from an explicit scene (e.g. one with hand-placed objects)."""
    actions = np.asarray(actions, dtype=np.float32)
    if actions.ndim != 2 or actions.shape[1] != 2 or len(actions) < 1:
        raise ValueError(f"actions must have shape (T, 2) with T >= 1, got {actions.shape}")
    physics = PusherPhysics(scene)
    applied = np.zeros_like(actions)
    positions = [physics.positions()]
    for j in range(1, len(actions)):
        applied[j] = clip_action(actions[j])
        physics.step(applied[j].astype(np.float64))
        positions.append(physics.positions())
    positions = np.stack(positions).astype(np.float32)
    return PusherEpisode(scene.seed, render_pusher_frames(scene, positions), applied, positions, scene.object_colours)


def random_pusher_actions(seed: int, n_frames: int) -> np.ndarray:
    """Smooth random commands for `seed`'s scene: a momentum random walk that keeps steering at an object,
    so pushes happen often. Returns (T, 2) float32 with actions[0] = 0 (already clipped)."""
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    return _random_actions(make_scene(seed), n_frames)


def _random_actions(scene: PusherScene, n_frames: int) -> np.ndarray:
    physics = PusherPhysics(scene)
    rng = np.random.default_rng((_POLICY_SALT, scene.seed))
    actions = np.zeros((n_frames, 2), dtype=np.float32)
    velocity = rng.normal(size=2)
    target, steps_left = -1, 0
    centre = np.full(2, FRAME_SIZE / 2)
    for j in range(1, n_frames):
        if steps_left <= 0:
            # Mostly chase an object; sometimes wander (target -1).
            target = int(rng.integers(0, scene.n_objects)) if rng.uniform() < 0.8 else -1
            steps_left = int(rng.integers(6, 16))
        steps_left -= 1
        if target >= 0:
            heading = np.subtract(physics.objects[target], physics.gripper)
            desire = 2.5 * heading / (np.linalg.norm(heading) + 1e-6)
        else:
            desire = 0.04 * (centre - np.asarray(physics.gripper))  # drift back from the walls
        velocity = 0.7 * velocity + 0.3 * (desire + 1.2 * rng.normal(size=2))
        # Store exactly what gets replayed: float32, clipped.
        actions[j] = clip_action(velocity).astype(np.float32)
        physics.step(actions[j].astype(np.float64))
    return actions


def generate_pusher_episode(seed: int, n_frames: int = 32) -> PusherEpisode:
    """One random episode; identical to simulate_pusher(seed, episode.actions)."""
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    scene = make_scene(seed)
    return simulate_from_scene(scene, _random_actions(scene, n_frames))

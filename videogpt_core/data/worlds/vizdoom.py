"""`vizdoom`: first-person Doom clips rendered offline by the ViZDoom engine (the `vizdoom` package, an
optional extra), driven by a scripted exploring policy; 64x64 RGB, HUD off, no window.

Scenarios: `health_gathering_supreme` (the ViZDoom scenario of the VideoGPT paper: a maze with an acid
floor, medkits and poison; episodes of 100 steps by default) and `freedoom` (the 32 maps of Freedoom
Phase 2: textured rooms, monsters and the player's weapon, for visually richer clips; the player is
invulnerable (the `god` cheat), so no clip ends early).

actions[j] is the multi-hot row of the scenario's buttons held for `frame_skip` game tics to go from frame j-1
to frame j; actions[0] is zeros. A seed fixes everything else (map, start, monsters, the engine's random
numbers), so `replay_vizdoom(seed, actions)` renders the same frames byte for byte.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from .optional_packages import import_world_package
from .simulators import simulator

FRAME_SIZE = 64
DEFAULT_SCENARIO = "health_gathering_supreme"
DEFAULT_FRAME_SKIP = 4  # game tics per step: 35 tics/s / 4 = 8.75 frames per second of game time
POLICY_ATTEMPTS = 8  # policy draws tried per seed (see generate_vizdoom_episode)
MIN_TRAVEL_PER_STEP = 8.0  # map units (walking covers ~30 per step): a draw that moves less looks for a better one
_SCREEN_WIDTH, _SCREEN_HEIGHT = 160, 120  # the engine's smallest 4:3 screen, area-resized to 64x64

_START_SALT = 0xD0017  # seeds the map / warm-up choice; the policy stream uses another tag
_POLICY_SALT = 0xD0018

# Label names (ZDoom actor classes) the policy reacts to.
ENEMIES = frozenset({
    "Zombieman", "ShotgunGuy", "ChaingunGuy", "DoomImp", "Demon", "Spectre", "LostSoul", "Cacodemon",
    "HellKnight", "BaronOfHell", "Arachnotron", "PainElemental", "Revenant", "Fatso", "Archvile",
    "SpiderMastermind", "Cyberdemon", "WolfensteinSS",
})
HEALTH_PICKUPS = frozenset({"CustomMedikit", "Medikit", "Stimpack", "HealthBonus", "Soulsphere"})


@dataclass(frozen=True)
class VizdoomScenario:
    name: str
    description: str
    buttons: tuple[str, ...]  # vizdoom.Button names, in the order of the action columns
    default_frames: int
    config: str | None = None  # a .cfg shipped in vizdoom's scenarios folder
    game_wad: str | None = None  # or a whole game shipped with vizdoom, played map by map
    maps: tuple[str, ...] = ()  # the seed picks one (empty: the config's map)
    skill: int | None = None
    warmup_steps: tuple[int, int] = (0, 0)  # unrecorded policy steps before frame 0, drawn per seed (inclusive)
    render_weapon: bool = False
    invulnerable: bool = False  # god mode: monsters and hazards cannot end a clip (looks the same)
    # Depth-buffer values (0..255, the engine scales them per map) straight ahead below which the explorer
    # turns away standing still (mostly wall in view), and below which it drifts to the more open side.
    wall_near: int = 22
    wall_soon: int = 40


SCENARIOS: dict[str, VizdoomScenario] = {
    "health_gathering_supreme": VizdoomScenario(
        name="health_gathering_supreme",
        description="the paper's ViZDoom scenario: a maze with an acid floor, medkits to gather and poison",
        buttons=("TURN_LEFT", "TURN_RIGHT", "MOVE_FORWARD"),
        default_frames=100,
        config="health_gathering_supreme.cfg",
    ),
    "freedoom": VizdoomScenario(
        name="freedoom",
        description="Freedoom Phase 2 maps MAP01-MAP32 (the seed picks the map and how far in the clip starts), "
                    "with monsters to shoot; the player is invulnerable",
        buttons=("TURN_LEFT", "TURN_RIGHT", "MOVE_FORWARD", "ATTACK"),
        default_frames=32,
        game_wad="freedoom2.wad",
        maps=tuple(f"MAP{number:02d}" for number in range(1, 33)),
        skill=2,
        warmup_steps=(0, 60),
        render_weapon=True,
        invulnerable=True,
        wall_near=8,  # rooms are wider and darker than the maze's corridors: walk closer before turning
        wall_soon=20,
    ),
}


@dataclass(frozen=True)
class VizdoomEpisode:
    seed: int
    frames: np.ndarray  # (T, 64, 64, 3) uint8
    actions: np.ndarray  # (T, n_buttons) float32 multi-hot, actions[0] = 0
    scenario: str
    frame_skip: int
    travel: float  # map units the player walked from frame 0 to the last frame
    positions: np.ndarray  # (T, 0, 2): no tracked things (the layout the other worlds share)


def get_scenario(name: str) -> VizdoomScenario:
    if name not in SCENARIOS:
        raise ValueError(f"unknown ViZDoom scenario {name!r}; choose one of: {', '.join(SCENARIOS)}")
    return SCENARIOS[name]


def check_frame_skip(frame_skip: int) -> int:
    if int(frame_skip) != frame_skip or frame_skip < 1:
        raise ValueError(f"--frame-skip must be a whole number of game tics >= 1, got {frame_skip!r}")
    return int(frame_skip)


# ---------------------------------------------------------------------------------------------
# The engine: one game per scenario and process, reused across episodes (starting one takes ~0.5 s). The game
# runs its engine as a child process of this one (see simulators.py for when it is closed).


def _game(scenario: VizdoomScenario):
    return simulator(f"vizdoom:{scenario.name}", lambda: _start_game(scenario))


def _start_game(scenario: VizdoomScenario):
    """(game, close) for a new game of `scenario`; its engine runs in a private folder, removed on close."""
    vzd = import_world_package("vizdoom", "vizdoom")
    game = vzd.DoomGame()
    if scenario.config:
        game.load_config(os.path.join(vzd.scenarios_path, scenario.config))
    else:
        game.set_doom_game_path(os.path.join(os.path.dirname(vzd.__file__), scenario.game_wad))
        game.set_episode_timeout(0)  # no time limit; our episodes are short
    if scenario.skill is not None:
        game.set_doom_skill(scenario.skill)
    if scenario.invulnerable:
        game.add_game_args("+sv_cheats 1")
    game.set_available_buttons([getattr(vzd.Button, name) for name in scenario.buttons])
    folder = tempfile.mkdtemp(prefix="videogpt-vizdoom-")
    # The engine writes its settings file next to the process; keep it in the private folder instead.
    game.set_doom_config_path(os.path.join(folder, "_vizdoom.ini"))
    game.set_window_visible(False)
    game.set_mode(vzd.Mode.PLAYER)
    game.set_screen_format(vzd.ScreenFormat.RGB24)
    game.set_screen_resolution(getattr(vzd.ScreenResolution, f"RES_{_SCREEN_WIDTH}X{_SCREEN_HEIGHT}"))
    game.set_render_hud(False)
    game.set_render_crosshair(False)
    game.set_render_messages(False)
    game.set_render_screen_flashes(False)
    game.set_render_weapon(scenario.render_weapon)
    game.set_sound_enabled(False)
    game.set_audio_buffer_enabled(False)
    game.set_automap_buffer_enabled(False)
    game.set_available_game_variables([vzd.GameVariable.POSITION_X, vzd.GameVariable.POSITION_Y])
    game.set_depth_buffer_enabled(True)  # the policy steers away from near walls
    game.set_labels_buffer_enabled(True)  # ... and towards medkits and monsters
    # The engine starts in this process's working directory, where it makes a `_vizdoom` folder (and the game
    # reads a `_vizdoom.cfg` that would override our settings): two engines starting in one folder race over
    # it. In the private folder each engine sees only its own.
    try:
        with _working_directory(folder):
            game.init()
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise

    def close() -> None:
        try:
            game.close()  # ends the engine process (which ignores SIGTERM) and removes its shared memory
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    return game, close


@contextlib.contextmanager
def _working_directory(folder: str) -> Iterator[None]:
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def _frame(state) -> np.ndarray:
    """The 160x120 screen, area-resized to 64x64 (the whole field of view, squeezed to a square)."""
    import cv2

    return cv2.resize(state.screen_buffer, (FRAME_SIZE, FRAME_SIZE), interpolation=cv2.INTER_AREA)


# ---------------------------------------------------------------------------------------------
# The scripted explorer


class ExplorerPolicy:
    """Mostly forward; turns away from walls the depth buffer shows close ahead (or when walking does not
    move the player), in random bursts, towards medkits (health pickups) and monsters in view, and shoots a
    monster under the crosshair. Reads the player's position from the state's first two game variables."""

    AIM_PX = 13  # half of one step's turn (14 degrees of the 90-degree view at 4 tics), in screen pixels

    def __init__(self, scenario: VizdoomScenario, rng: np.random.Generator):
        self.columns = {name: index for index, name in enumerate(scenario.buttons)}
        self.wall_near, self.wall_soon = scenario.wall_near, scenario.wall_soon
        self.rng = rng
        self.turn, self.turn_steps, self.turn_forward = 0, 0, True
        self.walked, self.position = False, None  # whether the last action walked, and from where

    def _row(self, turn: int, forward: bool, attack: bool = False) -> list[int]:
        row = [0] * len(self.columns)
        if turn < 0:
            row[self.columns["TURN_LEFT"]] = 1
        elif turn > 0:
            row[self.columns["TURN_RIGHT"]] = 1
        if forward:
            row[self.columns["MOVE_FORWARD"]] = 1
        if attack and "ATTACK" in self.columns:
            row[self.columns["ATTACK"]] = 1
        return row

    def act(self, state) -> list[int]:
        row = self._choose(state)
        self.walked = bool(row[self.columns["MOVE_FORWARD"]])
        return row

    def _choose(self, state) -> list[int]:
        position = np.asarray(state.game_variables[:2], dtype=np.float64)
        # Walking that did not move us: pressed against something the depth buffer did not show as near.
        blocked = self.walked and self.position is not None and np.linalg.norm(position - self.position) < 4.0
        self.position = position
        depth = state.depth_buffer
        band = depth[_SCREEN_HEIGHT * 3 // 8: _SCREEN_HEIGHT * 5 // 8]  # around the horizon
        third = _SCREEN_WIDTH // 3
        ahead = float(np.percentile(band[:, third: 2 * third], 10))
        left, right = float(band[:, :third].mean()), float(band[:, 2 * third:].mean())
        open_side = -1 if left > right else 1
        rng = self.rng

        if self.turn_steps > 0:  # finish a turn already started
            self.turn_steps -= 1
            return self._row(self.turn, self.turn_forward)
        if ahead < self.wall_near or blocked:  # facing a wall: turn towards the open side, standing, 1-3 steps
            self.turn, self.turn_steps, self.turn_forward = open_side, int(rng.integers(0, 3)), False
            return self._row(self.turn, False)

        target = self._target(state.labels)
        if target is not None:
            label, is_enemy = target
            offset = label.x + label.width / 2 - _SCREEN_WIDTH / 2
            aimed = abs(offset) <= max(self.AIM_PX, label.width / 2)
            turn = 0 if aimed else (1 if offset > 0 else -1)
            if rng.uniform() < 0.08:  # noise, so the same view does not always give the same action
                turn = int(rng.integers(-1, 2))
            return self._row(turn, forward=not is_enemy or rng.uniform() < 0.5, attack=is_enemy and aimed)

        if rng.uniform() < 0.07:  # a random turn of a few steps
            self.turn = int(rng.choice([-1, 1]))
            self.turn_steps, self.turn_forward = int(rng.integers(1, 6)), bool(rng.uniform() < 0.6)
            return self._row(self.turn, self.turn_forward)
        if ahead < self.wall_soon and abs(left - right) > 4:
            return self._row(open_side, True)
        return self._row(0, rng.uniform() < 0.95)

    def _target(self, labels):
        """The nearest-looking monster in view, else health pickup, as (label, is_enemy); or None."""
        best, best_area, best_enemy = None, 0.0, False
        for label in labels:
            is_enemy = label.object_name in ENEMIES
            if not is_enemy and label.object_name not in HEALTH_PICKUPS:
                continue
            # Monsters first; among the rest big (near) ones close to the centre, so the aim does not flip.
            offset = abs(label.x + label.width / 2 - _SCREEN_WIDTH / 2)
            area = float(label.width * label.height) * (100.0 if is_enemy else 1.0) / (1.0 + offset / 20.0)
            if area > best_area:
                best, best_area, best_enemy = label, area, is_enemy
        return None if best is None else (best, best_enemy)


# ---------------------------------------------------------------------------------------------
# Episodes


def _start(game, scenario: VizdoomScenario, seed: int, frame_skip: int) -> None:
    """Put the game where `seed` says frame 0 is: its map, the engine's seed, and its unrecorded warm-up."""
    rng = np.random.default_rng((_START_SALT, int(seed)))
    if scenario.maps:
        game.set_doom_map(scenario.maps[int(rng.integers(len(scenario.maps)))])
    game.set_seed(int(seed) % 2**32)
    game.new_episode()
    if scenario.invulnerable:
        game.send_game_command("god")
    warmup = int(rng.integers(scenario.warmup_steps[0], scenario.warmup_steps[1] + 1))
    policy = ExplorerPolicy(scenario, rng)
    for _ in range(warmup):
        if game.is_episode_finished():
            break
        game.make_action(policy.act(game.get_state()), frame_skip)


def _run(seed: int, n_frames: int, scenario: VizdoomScenario, frame_skip: int,
         actions: np.ndarray | None = None, attempt: int = 0) -> VizdoomEpisode | None:
    """Record n_frames from seed's start, replaying `actions` or drawing them from the policy (draw `attempt`).
    None when the player dies or the episode ends before the last frame."""
    game = _game(scenario)
    _start(game, scenario, seed, frame_skip)
    policy = None if actions is not None else \
        ExplorerPolicy(scenario, np.random.default_rng((_POLICY_SALT, int(seed), attempt)))
    recorded = np.zeros((n_frames, len(scenario.buttons)), dtype=np.float32)
    frames = np.zeros((n_frames, FRAME_SIZE, FRAME_SIZE, 3), dtype=np.uint8)
    travel, where = 0.0, None
    for j in range(n_frames):
        if game.is_episode_finished():
            return None
        state = game.get_state()
        frames[j] = _frame(state)
        here = np.asarray(state.game_variables[:2], dtype=np.float64)
        travel += 0.0 if where is None else float(np.linalg.norm(here - where))
        where = here
        if j + 1 == n_frames:
            break
        row = actions[j + 1] if policy is None else policy.act(state)
        recorded[j + 1] = row
        game.make_action([int(value) for value in recorded[j + 1]], frame_skip)
    return VizdoomEpisode(int(seed), frames, recorded, scenario.name, frame_skip, travel,
                          np.zeros((n_frames, 0, 2), dtype=np.float32))


def generate_vizdoom_episode(seed: int, n_frames: int = 100, scenario: str = DEFAULT_SCENARIO,
                             frame_skip: int = DEFAULT_FRAME_SKIP) -> VizdoomEpisode:
    """One episode of the exploring policy; identical to replay_vizdoom(seed, episode.actions, ...).

    Of up to POLICY_ATTEMPTS policy draws in which the player lives to the last frame, the first that walks
    at least MIN_TRAVEL_PER_STEP per step is kept, else the one that walks farthest (a start in a closet
    or facing a door gives clips of walls otherwise)."""
    spec, frame_skip = get_scenario(scenario), check_frame_skip(frame_skip)
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    best = None
    for attempt in range(POLICY_ATTEMPTS):
        episode = _run(seed, n_frames, spec, frame_skip, attempt=attempt)
        if episode is None:
            continue
        if episode.travel >= MIN_TRAVEL_PER_STEP * (n_frames - 1):
            return episode
        if best is None or episode.travel > best.travel:
            best = episode
    if best is not None:
        return best
    raise RuntimeError(f"ViZDoom {scenario} seed {seed}: the player died before frame {n_frames} in all "
                       f"{POLICY_ATTEMPTS} policy draws; use fewer --frames or a smaller --frame-skip")


def replay_vizdoom(seed: int, actions: np.ndarray, scenario: str = DEFAULT_SCENARIO,
                   frame_skip: int = DEFAULT_FRAME_SKIP) -> VizdoomEpisode:
    """Render `actions` (T, n_buttons) multi-hot from the start `seed` fixes; actions[0] is ignored (frame 0 is
    the start). Raises RuntimeError when the player dies before the last frame."""
    spec, frame_skip = get_scenario(scenario), check_frame_skip(frame_skip)
    actions = np.asarray(actions, dtype=np.float32)
    if actions.ndim != 2 or actions.shape[1] != len(spec.buttons) or len(actions) < 1:
        raise ValueError(f"actions must have shape (T, {len(spec.buttons)}) (buttons {', '.join(spec.buttons)}) "
                         f"with T >= 1, got {actions.shape}")
    if not np.isin(actions, (0.0, 1.0)).all():
        raise ValueError("actions must be multi-hot: every entry 0 or 1")
    episode = _run(seed, len(actions), spec, frame_skip, actions=actions)
    if episode is None:
        raise RuntimeError(f"ViZDoom {scenario} seed {seed}: the episode ended (the player died) before frame "
                           f"{len(actions)}")
    return episode

"""What the Play tab offers for the model chosen at the top of the page: whether it can be played (and why not),
its world's keys, how many frames one key press plays, its start frames and its test episodes.

Start frames are the shipped example frames (demo/examples), so playing needs no simulator; a test episode's
first frames are drawn from the world itself, which for vizdoom and fetchpush needs the optional simulators.
"""
from __future__ import annotations

import importlib.util

import gradio as gr
import numpy as np

from demo.model_controls import examples_for_model
from demo.model_registry import ModelInfo, ModelRegistry
from videogpt_core.data.worlds import WORLDS, get_world, split_seeds
from videogpt_core.data.worlds.controls import WorldControls, controls_for
from videogpt_core.data.worlds.optional_packages import INSTALL_COMMAND

DEFAULT_FPS = 10
# The packages each simulated world imports to draw an episode (the procedural worlds need none).
SIMULATOR_MODULES = {"vizdoom": ("vizdoom",), "fetchpush": ("gymnasium", "gymnasium_robotics", "mujoco")}


def why_not_playable(info: ModelInfo | None) -> str | None:
    """None when the model can be played, else a plain sentence saying why not."""
    if info is None:
        return "No model is served, so there is nothing to play."
    cfg = info.prior_config
    if not cfg.action_dim:
        return (f"**{info.name}** is not action-conditional: it takes no actions, so there is nothing to steer. "
                "Choose an action-conditioned model (a world such as pusher or vizdoom) in the Model picker above.")
    if cfg.n_classes:
        return (f"**{info.name}** also needs a class, which Play does not give. Choose a model conditioned on frames "
                "and actions only in the Model picker above.")
    if info.latent_shape[0] < 2:
        return f"**{info.name}** has a one-slice window: it cannot continue a video step by step."
    return None


def play_models(registry: ModelRegistry) -> list[str]:
    """Served models that can be played."""
    return [name for name, info in registry.infos.items() if why_not_playable(info) is None]


def info_of(registry: ModelRegistry, name: str | None) -> ModelInfo | None:
    return registry.infos.get(name) if name else None


def play_controls(registry: ModelRegistry, name: str | None) -> tuple[WorldControls | None, int]:
    """The chosen model's controls (None when it cannot be played) and its world's frame rate."""
    info = info_of(registry, name)
    if why_not_playable(info) is not None:
        return None, DEFAULT_FPS
    fps = WORLDS[info.world].fps if info.world else DEFAULT_FPS
    return controls_for(info.world, info.action_dim, info.prior_config.action_range), fps


def frames_per_key(info: ModelInfo) -> str:
    """How much one key press plays, in words."""
    if info.frames_per_latent == 1:
        return "one key press plays one new frame"
    return (f"one key press plays one latent slice of {info.frames_per_latent} frames (this model codes "
            f"{info.frames_per_latent} frames per slice, so it steps slice by slice)")


def keys_line(controls: WorldControls | None, info: ModelInfo | None) -> str:
    """One line under the screen: the world's keys and what one key press plays."""
    if controls is None or info is None:
        return ""
    keys = " · ".join(f"{keys} {meaning}" for keys, _, meaning in controls.describe())
    per_key = frames_per_key(info)
    return f"Keys of the {controls.world} world: {keys}. {per_key[0].upper()}{per_key[1:]}."


def controls_markdown(registry: ModelRegistry, name: str | None) -> str:
    """The tab's note on the chosen model: why it cannot be played, or its key table and step size."""
    info = info_of(registry, name)
    reason = why_not_playable(info)
    if reason is not None:
        return reason
    controls, _ = play_controls(registry, name)
    rows = "\n".join(f"| {keys} | {button} | {meaning} |" for keys, button, meaning in controls.describe())
    extra = "" if "extra" in controls.names else "\n\nSpace: this world has no extra action."
    noop = ", ".join(f"{column} {value:g}" for column, value in zip(controls.action_names, controls.noop))
    return (f"**Controls of the {controls.world} world** for **{info.name}**: {frames_per_key(info)}; "
            f"no key: the no-op action {noop}.\n\n| keys | button | action |\n|---|---|---|\n{rows}{extra}")


def controls_props(registry: ModelRegistry, name: str | None) -> dict:
    """The screen's props: on-screen buttons, the key -> control map the page uses and the keys line."""
    controls, _ = play_controls(registry, name)
    if controls is None:
        return dict(controls=[], keymap={}, keys_text="")
    buttons = [dict(name=c.name, symbol=c.symbol, meaning=c.meaning) for c in controls.controls]
    keymap = {key: c.name for c in controls.controls for key in c.keys}
    return dict(controls=buttons, keymap=keymap, keys_text=keys_line(controls, info_of(registry, name)))


def examples_for(registry: ModelRegistry, name: str | None) -> list[tuple[str, str]]:
    """The shipped example frames of the chosen model's world (none when it cannot be played)."""
    info = info_of(registry, name)
    return examples_for_model(info) if why_not_playable(info) is None and info.world else []


def missing_simulator(world: str | None, modules: dict[str, tuple[str, ...]] = SIMULATOR_MODULES) -> str | None:
    """None when test episodes of `world` can be drawn here, else a sentence saying what to install."""
    if world is None:
        return "This model is named after no built-in world, so it has no test episodes: start from an image."
    missing = [module for module in modules.get(world, ()) if importlib.util.find_spec(module) is None]
    if not missing:
        return None
    return (f"Test episodes of the {world} world need its simulator ({', '.join(missing)} is not installed: "
            f"`{INSTALL_COMMAND}`); the example frames above need nothing.")


def test_episode_note(registry: ModelRegistry, name: str | None) -> str:
    info = info_of(registry, name)
    if why_not_playable(info) is not None:
        return ""
    return missing_simulator(info.world) or ""


def test_episode_start(registry: ModelRegistry, name: str | None, index, context_frames: int | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """The first frames (the model's context, `context_frames` or the window less one slice) and actions of
    test episode `index` of the model's world."""
    info = info_of(registry, name)
    world = info.world if info else None
    problem = missing_simulator(world)
    if problem:
        raise gr.Error(problem, print_exception=False)
    if isinstance(index, bool) or not isinstance(index, (int, float)) or index != int(index) or index < 0:
        raise gr.Error(f"the test episode must be a whole number >= 0, got {index!r}", print_exception=False)
    spec = get_world(world)
    if world == "vizdoom":  # the scenario whose buttons the model was trained on
        from videogpt_core.data.worlds.vizdoom import SCENARIOS

        scenario = next((s.name for s in SCENARIOS.values() if len(s.buttons) == info.action_dim), None)
        spec = get_world(world, scenario=scenario)
    n_frames = context_frames or (info.latent_shape[0] - 1) * info.frames_per_latent
    seed = int(split_seeds("test", int(index) + 1)[int(index)])
    try:
        episode = spec.generate(seed, n_frames)
    except ImportError as error:
        raise gr.Error(str(error), print_exception=False) from None
    return episode.frames, episode.actions

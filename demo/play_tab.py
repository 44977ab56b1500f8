"""The Play tab: steer the world model chosen in the page's Model picker live from the keyboard or on-screen
buttons.

The page holds the keys: while a control is held (or was tapped since the last step), it asks the server for
the model's next step with that action row (one frame, or one latent slice of frames for a model that codes
several frames per slice), shows the new frames as they arrive, and asks again at once while the key is still
down. Steps, undo and reset are server functions of the screen (a gr.HTML), called one at a time per page;
starting an episode and the mp4 are ordinary events. Each browser session has its own world in `PlayerStore`,
freed when the page is closed, when the Model picker changes (or after PLAYER_IDLE_S without a call). What each
model offers (keys, starts, test episodes) is in play_worlds.py.
"""
from __future__ import annotations

import base64
import io
import threading
import time
import uuid
from dataclasses import dataclass, field

import gradio as gr
import numpy as np
from PIL import Image

from demo.display_images import display_scale
from demo.input_checks import load_start_image
from demo.model_registry import ModelRegistry
from demo.output_store import OutputStore
from demo.play_screen import SCREEN_CSS, SCREEN_HTML, SCREEN_JS
from demo.play_worlds import (DEFAULT_FPS, controls_markdown, controls_props, examples_for, play_controls,
                              play_models, test_episode_note, test_episode_start, why_not_playable)
from videogpt_core.data.worlds.controls import WorldControls
from videogpt_core.inference.play import PlaySession, default_context_slices
from videogpt_core.io.video_io import read_image, write_mp4

MAX_PLAYERS = 16  # worlds kept at once; the least recently used one goes first
PLAYER_IDLE_S = 1800  # a world nobody stepped for this long is freed (pages that vanished without closing)
MAX_EPISODE_FRAMES = 3000  # kept for the mp4 (5 min at 10 fps, 37 MB at 64x64); older frames drop out
CONCURRENT_STEPS = 2  # steps computed at once over all players (the machine's cores are few)

PLAY_HELP = """**Play** the model chosen in the Model picker above: pick a start (click an example frame, upload
an image or load a test episode), then hold arrow keys / WASD (or the buttons under the screen) to steer; Space
does the world's extra action. Each key press samples the world's next step with the controls held during it:
one frame, or one latent slice of frames for a model that codes several frames per slice. With nothing held the
world waits. Under the screen: the latest step's time from key press to frame on screen, and the frames shown
per second while playing."""


# ----------------------------------------------------------------------------- players


@dataclass
class Player:
    session: PlaySession
    model: str
    controls: WorldControls
    fps: int
    # Names this episode to the page: server functions get no session, so the page sends this (unguessable)
    # name with every step; a new start replaces it.
    episode: str = field(default_factory=lambda: uuid.uuid4().hex)
    last_used: float = field(default_factory=time.monotonic)


class PlayerStore:
    """Each browser session's world, keyed by Gradio's session hash and found by its episode name."""

    def __init__(self, max_players: int = MAX_PLAYERS, idle_s: float = PLAYER_IDLE_S,
                 concurrent_steps: int = CONCURRENT_STEPS):
        self.max_players, self.idle_s = max_players, idle_s
        self._players: dict[str, Player] = {}
        self._lock = threading.Lock()
        self._compute = threading.BoundedSemaphore(concurrent_steps)

    def __len__(self) -> int:
        return len(self._players)

    def _sweep_locked(self) -> None:
        now = time.monotonic()
        for key in [key for key, player in self._players.items() if now - player.last_used > self.idle_s]:
            del self._players[key]
        while len(self._players) > self.max_players:
            del self._players[min(self._players, key=lambda key: self._players[key].last_used)]

    def put(self, key: str, player: Player) -> None:
        with self._lock:
            self._players[key] = player
            self._sweep_locked()

    def get(self, key: str | None) -> Player | None:
        """The world of browser session `key`, or None."""
        with self._lock:
            self._sweep_locked()
            player = self._players.get(key) if key else None
            if player is not None:
                player.last_used = time.monotonic()
            return player

    def find(self, episode) -> Player | None:
        """The world playing `episode` (the name its start gave the page), or None if it is gone."""
        with self._lock:
            self._sweep_locked()
            player = next((p for p in self._players.values() if p.episode == episode), None) \
                if isinstance(episode, str) else None
            if player is not None:
                player.last_used = time.monotonic()
            return player

    def free(self, key: str | None) -> None:
        """Forget a session's world (a step still running on it finishes, and its result goes nowhere)."""
        with self._lock:
            self._players.pop(key, None)

    def computing(self):
        return self._compute


# ----------------------------------------------------------------------------- payloads for the page


def png_data_uri(frame: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG", compress_level=1)  # 64x64: size hardly matters, speed does
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def screen_payload(player: Player | None, frames: list[np.ndarray] | None = None, message: str = "",
                   **extra) -> dict:
    """What the page's screen shows: frames to draw (in order) and the episode they belong to."""
    if player is None:
        return dict(episode=None, frames=[], length=0, steps=0, fps=DEFAULT_FPS, message=message, **extra)
    session = player.session
    frames = [session.last_frame] if frames is None else frames
    return dict(episode=player.episode, frames=[png_data_uri(frame) for frame in frames], length=len(session.frames),
                steps=session.n_steps, fps=player.fps, message=message, **extra)


GONE = ("This world is gone (the page was idle for long, or the server restarted): pick a start to play "
        "again.")


def player_for(store: PlayerStore, data) -> tuple[Player | None, dict | None]:
    """The world a page's call names, or the reply to send instead: a call of a replaced episode is answered
    with its own name, which the page ignores (it plays the new one)."""
    episode = data.get("episode") if isinstance(data, dict) else None
    if episode is None:
        return None, dict(error=NO_WORLD, episode=None)
    player = store.find(episode)
    if player is None:
        return None, dict(error=GONE, episode=episode)
    return player, None


def held_controls(player: Player, data) -> list[str]:
    """The control names the page sent, checked against the world's controls."""
    keys = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
        raise ValueError("a step takes {'episode': id, 'keys': [control names], 'temperature': number}; "
                         f"the controls of this world: {', '.join(player.controls.names)}")
    return keys


def temperature_of(data) -> float | None:
    value = data.get("temperature") if isinstance(data, dict) else None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"temperature must be a number > 0, got {value!r}")
    return float(value)


NO_WORLD = "Pick a start first: click an example frame, upload an image or load a test episode."


def step(store: PlayerStore, data) -> dict:
    """One step for the page: {'episode', 'keys', 'temperature'} -> the new frames (or a message)."""
    player, reply = player_for(store, data)
    if player is None:
        return reply
    try:
        row = player.controls.row(held_controls(player, data))
        temperature = temperature_of(data)
        if temperature is not None:
            player.session.set_sampling(temperature=temperature)
    except ValueError as error:
        return dict(error=str(error), episode=player.episode)
    with store.computing():
        result = player.session.step(row)
    return dict(screen_payload(player, list(result.frames)), ms=round(1000 * result.seconds, 1))


def undo(store: PlayerStore, data) -> dict:
    player, reply = player_for(store, data)
    if player is None:
        return reply
    undone = player.session.undo()
    return screen_payload(player, message="" if undone else "Nothing to undo: this is the start.")


def reset(store: PlayerStore, data) -> dict:
    player, reply = player_for(store, data)
    if player is None:
        return reply
    player.session.reset()
    return screen_payload(player, message="Back at the start.")


# ----------------------------------------------------------------------------- starts


def start(registry: ModelRegistry, store: PlayerStore, key: str | None, name: str | None, frames,
          actions=None, message: str = "") -> dict:
    """A new world for this session from start frames; the screen payload showing the start."""
    if key is None:
        raise gr.Error("no browser session: play needs a page of this demo", print_exception=False)
    reason = why_not_playable(registry.infos.get(name) if name else None)
    if reason is not None:
        raise gr.Error(f"{name!r} cannot be played: {reason.replace('**', '')}", print_exception=False)
    controls, fps = play_controls(registry, name)
    try:
        session = PlaySession(registry.pipeline(name), frames, actions=actions, max_frames=MAX_EPISODE_FRAMES)
    except ValueError as error:
        raise gr.Error(str(error), print_exception=False) from None
    player = Player(session, name, controls, fps)
    store.put(key, player)
    return screen_payload(player, list(session.frames), message=message or "Hold a key to play.")


def idle_screen(registry: ModelRegistry, name: str | None) -> dict:
    """The screen before a start: what to do next for this model."""
    playable = why_not_playable(registry.infos.get(name) if name else None) is None
    return screen_payload(None, message="Pick a start." if playable else
                          "This model cannot be played: choose an action-conditioned one in the Model picker.")


def build_play_tab(registry: ModelRegistry, demo: gr.Blocks, model: gr.Dropdown,
                   store: PlayerStore | None = None) -> PlayerStore:
    """The Play tab (call inside gr.Tabs of `demo`) of the model chosen in `model`, the page's model picker;
    returns the store of the players' worlds."""
    store = store or PlayerStore()
    outputs = OutputStore()
    first = model.value
    playable = first in play_models(registry)

    def play_step(data):
        return step(store, data)

    def play_undo(data):
        return undo(store, data)

    def play_reset(data):
        return reset(store, data)

    with gr.Tab("Play", id="play"):
        gr.Markdown(PLAY_HELP)
        with gr.Row():
            with gr.Column(scale=1):
                screen = gr.HTML(value=idle_screen(registry, first), html_template=SCREEN_HTML,
                                 css_template=SCREEN_CSS, js_on_load=SCREEN_JS,
                                 server_functions=[play_step, play_undo, play_reset], elem_id="play-screen",
                                 **controls_props(registry, first))
                controls_help = gr.Markdown(controls_markdown(registry, first), elem_id="play-controls")
            with gr.Column(scale=1, visible=playable) as starts:
                examples = gr.Gallery(value=examples_for(registry, first),
                                      label="Start from an example frame (click one)", columns=6, height=130,
                                      allow_preview=False, object_fit="contain", interactive=False,
                                      elem_id="play-examples")
                upload = gr.Image(type="filepath", label="…or upload a start image", sources=["upload", "clipboard"],
                                  height=160, elem_id="play-upload")
                note = test_episode_note(registry, first)
                with gr.Row(equal_height=True, visible=playable and not note) as test_row:
                    test_index = gr.Number(value=0, minimum=0, precision=0, label="…or a test episode #",
                                           elem_id="play-test-index")
                    test_button = gr.Button("Start from its first frames", elem_id="play-test-start")
                test_note = gr.Markdown(note, visible=bool(note), elem_id="play-test-note")
                with gr.Row(equal_height=True):
                    mp4_button = gr.Button("Episode as mp4", elem_id="play-mp4-button")
                    mp4 = gr.File(label="Played episode (H.264 mp4)", interactive=False, elem_id="play-mp4")

    def on_model(name, request: gr.Request):
        store.free(request.session_hash)  # another model: the old world is gone
        can_play = name in play_models(registry)
        note = test_episode_note(registry, name)
        return (gr.update(value=idle_screen(registry, name), **controls_props(registry, name)),
                controls_markdown(registry, name), gr.update(visible=can_play), examples_for(registry, name),
                gr.update(visible=can_play and not note), gr.update(value=note, visible=bool(note)), None)

    model.change(on_model, model, [screen, controls_help, starts, examples, test_row, test_note, mp4],
                 api_visibility="private")

    def on_example(name, evt: gr.SelectData, request: gr.Request):
        items = examples_for(registry, name)
        if not 0 <= evt.index < len(items):
            raise gr.Error("that example is gone; pick another", print_exception=False)
        path, caption = items[evt.index]
        return start(registry, store, request.session_hash, name, read_image(path), message=f"Start: {caption}. "
                     "Hold a key to play.")

    examples.select(on_example, model, screen, api_visibility="private")

    def on_upload(name, path, request: gr.Request):
        if path is None:
            return gr.skip()
        return start(registry, store, request.session_hash, name, load_start_image(path))

    upload.upload(on_upload, [model, upload], screen, api_visibility="private")

    def on_test_episode(name, index, request: gr.Request):
        info = registry.infos.get(name)
        context = default_context_slices(info.latent_shape[0]) * info.frames_per_latent if info else None
        frames, actions = test_episode_start(registry, name, index, context)
        return start(registry, store, request.session_hash, name, frames, actions,
                     message=f"Start: test episode {int(index)}. Hold a key to play.")

    test_button.click(on_test_episode, [model, test_index], screen, api_visibility="private")

    def on_mp4(request: gr.Request):
        player = store.get(request.session_hash)
        if player is None:
            raise gr.Error(NO_WORLD, print_exception=False)
        frames = player.session.frames
        folder = outputs.new_folder()
        scale = display_scale(frames.shape[1])
        return str(write_mp4(folder / f"play-{player.model.replace('/', '-')}-{len(frames)}-frames.mp4", frames,
                             player.fps, scale=scale))

    mp4_button.click(on_mp4, None, mp4, api_visibility="private")

    def on_leave(request: gr.Request):
        store.free(request.session_hash)

    demo.unload(on_leave)
    demo.play_store = store  # the players' worlds, for whoever runs the demo (tests, operators)
    return store

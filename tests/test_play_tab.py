"""The Play tab's server side without a browser: players' worlds, page calls, bad calls (tiny models)."""
from __future__ import annotations

import time

import numpy as np
import pytest
from demo_helpers import make_checkpoints

from demo import play_tab
from demo.model_registry import ModelRegistry


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    folders = make_checkpoints(tmp_path_factory.mktemp("checkpoints"))
    return ModelRegistry.from_paths(list(folders.values()), device="cpu")


def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)


def test_only_action_conditioned_models_are_played(registry):
    with pytest.raises(Exception, match="cannot be played.*not action-conditional"):
        play_tab.start(registry, play_tab.PlayerStore(), "session", "digits-tiny", image())
    assert "cannot be played" in play_tab.idle_screen(registry, "digits-tiny")["message"]
    assert play_tab.idle_screen(registry, "pusher-tiny")["message"] == "Pick a start."


def test_page_calls_step_undo_reset(registry):
    store = play_tab.PlayerStore()
    shown = play_tab.start(registry, store, "session", "pusher-tiny", image())
    episode = shown["episode"]
    assert len(shown["frames"]) == 1 and shown["frames"][0].startswith("data:image/png;base64,")
    reply = play_tab.step(store, dict(episode=episode, keys=["right", "up"], temperature=0.8))
    assert reply["episode"] == episode and len(reply["frames"]) == 1 and reply["ms"] > 0  # 2 frames per slice
    reply = play_tab.step(store, dict(episode=episode, keys=[]))  # no key: the no-op row
    assert reply["length"] == 4 and reply["steps"] == 2
    player = store.get("session")
    np.testing.assert_allclose(player.session.actions[-1], [0, 0])
    assert play_tab.undo(store, dict(episode=episode))["steps"] == 1
    assert play_tab.reset(store, dict(episode=episode))["steps"] == 0
    assert "Nothing to undo" in play_tab.undo(store, dict(episode=episode))["message"]


def test_bad_calls_get_messages_not_errors(registry):
    store = play_tab.PlayerStore()
    assert "Pick a start first" in play_tab.step(store, dict(keys=["left"]))["error"]
    assert "Pick a start first" in play_tab.step(store, None)["error"]
    assert "gone" in play_tab.step(store, dict(episode="no-such-episode", keys=["left"]))["error"]
    episode = play_tab.start(registry, store, "session", "pusher-tiny", image())["episode"]
    assert "unknown control" in play_tab.step(store, dict(episode=episode, keys=["jump"]))["error"]
    assert "control names" in play_tab.step(store, dict(episode=episode, keys="left"))["error"]
    assert "temperature" in play_tab.step(store, dict(episode=episode, keys=[], temperature="hot"))["error"]
    assert "temperature" in play_tab.step(store, dict(episode=episode, keys=[], temperature=-1))["error"]
    assert store.get("session").session.n_steps == 0
    # A new start replaces the episode: calls naming the old one are answered under the old name (the page
    # ignores them) and change nothing.
    newer = play_tab.start(registry, store, "session", "pusher-tiny", image())["episode"]
    assert newer != episode
    assert play_tab.step(store, dict(episode=episode, keys=["left"]))["episode"] == episode
    assert store.get("session").session.n_steps == 0


def test_players_are_freed(registry):
    store = play_tab.PlayerStore(max_players=2, idle_s=60)
    for key in ("a", "b", "c"):
        play_tab.start(registry, store, key, "pusher-tiny", image())
    assert len(store) == 2 and store.get("a") is None  # the least recently used went first
    store.free("b")
    assert len(store) == 1 and store.get("b") is None
    store.free("never-there")
    store.idle_s = 0.01
    time.sleep(0.05)
    assert store.get("c") is None and len(store) == 0  # idle worlds go too

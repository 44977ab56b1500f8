"""What the Play tab offers for the chosen model (tiny models): why a model cannot be played, its world's keys,
frames per key press, start frames from the shipped examples and test episodes only where the simulator is."""
from __future__ import annotations

import pytest
from demo_helpers import make_checkpoints

from demo import play_worlds
from demo.model_registry import ModelRegistry
from tiny_models import tiny_prior, tiny_vqvae
from videogpt_core.models.checkpoints import save_pipeline

PER_FRAME_VIZDOOM = dict(n_cond_frames=1, frame_encoder_widths=(8, 8, 8, 12), frame_encoder_blocks=(1, 1, 1, 1),
                         action_dim=3, action_embed_dim=6, action_range=[[0.0, 1.0]] * 3)


def per_frame_vizdoom(root):
    """A tiny vizdoom-named model whose latent slices hold one frame each (3 frames per window)."""
    vqvae = tiny_vqvae(3, downsample=(1, 4, 4), sequence_length=3)
    return save_pipeline(root / "vizdoom-tiny", vqvae, tiny_prior(vqvae, "none", seed=4, **PER_FRAME_VIZDOOM))


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    folders = list(make_checkpoints(root).values()) + [per_frame_vizdoom(root)]
    return ModelRegistry.from_paths(folders, device="cpu")


def test_models_that_cannot_be_played_say_why(registry):
    assert play_worlds.play_models(registry) == ["pusher-tiny", "vizdoom-tiny"]
    assert "not action-conditional" in play_worlds.controls_markdown(registry, "digits-tiny")
    assert "not action-conditional" in play_worlds.controls_markdown(registry, "uncond-tiny")
    assert play_worlds.controls_props(registry, "digits-tiny") == dict(controls=[], keymap={}, keys_text="")
    assert play_worlds.examples_for(registry, "digits-tiny") == []
    assert "No model is served" in play_worlds.controls_markdown(registry, None)


def test_keys_and_frames_per_key_follow_the_world(registry):
    pusher = play_worlds.controls_props(registry, "pusher-tiny")
    vizdoom = play_worlds.controls_props(registry, "vizdoom-tiny")
    assert pusher["keymap"]["ArrowUp"] == "up" and "move the gripper up" in pusher["keys_text"]
    assert "one latent slice of 2 frames" in pusher["keys_text"]
    assert "turn left" in vizdoom["keys_text"] and "one new frame" in vizdoom["keys_text"]
    assert "pusher" not in vizdoom["keys_text"]
    table = play_worlds.controls_markdown(registry, "vizdoom-tiny")
    assert "| ← / A | ← | turn left |" in table and "one key press plays one new frame" in table
    controls, fps = play_worlds.play_controls(registry, "vizdoom-tiny")
    assert controls.world == "vizdoom" and fps == 9


def test_start_frames_are_the_shipped_examples_of_the_world(registry):
    for name, world in (("pusher-tiny", "pusher"), ("vizdoom-tiny", "vizdoom")):
        examples = play_worlds.examples_for(registry, name)
        assert examples and all(caption.startswith(world + " ") for _, caption in examples)
        assert all("/demo/examples/" in path for path, _ in examples)


def test_test_episodes_only_where_the_simulator_is(registry):
    assert play_worlds.missing_simulator("pusher") is None  # procedural: always there
    message = play_worlds.missing_simulator("vizdoom", {"vizdoom": ("no_such_simulator_package",)})
    assert "no_such_simulator_package is not installed" in message and 'pip install -e ".[worlds]"' in message
    assert "example frames above need nothing" in message
    assert "no built-in world" in play_worlds.missing_simulator(None)
    frames, actions = play_worlds.test_episode_start(registry, "pusher-tiny", 1, 4)
    assert frames.shape[0] == actions.shape[0] == 4
    with pytest.raises(Exception, match="whole number"):
        play_worlds.test_episode_start(registry, "pusher-tiny", -1)

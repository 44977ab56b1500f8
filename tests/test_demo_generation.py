"""demo/generation.py called directly: each conditioning type streamed slice by slice, continuing a result, and
bad input answered with a clear gr.Error."""
from __future__ import annotations

import gradio as gr
import numpy as np
import pandas as pd
import pytest
from demo_helpers import RESOLUTION, WINDOW, still_image
from PIL import Image

from demo.action_input import actions_table
from demo.action_presets import preset_actions
from demo.display_images import display_scale
from demo.generation import GenerationUpdate, continuation_context, continue_generation
from demo.generation import generate as generate_updates

from demo.output_store import OutputStore
from videogpt_core.io.video_probe import probe_stream


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return OutputStore(tmp_path_factory.mktemp("outputs"))


def zero_table(n_frames: int) -> pd.DataFrame:
    return actions_table(np.zeros((n_frames, 2), np.float32))


def run(updates) -> list[GenerationUpdate]:
    return list(updates)


SAMPLING = dict(temperature=1.0, top_k=0, top_p=1.0, guidance=1.0)


def generate(registry, store, model, image=None, label=None, actions=None, seed=7, n_samples=1, n_frames=WINDOW,
             **overrides):
    settings = {**SAMPLING, **overrides}
    return run(generate_updates(registry, store, model, image, label, actions, seed, False, n_samples, n_frames,
                                settings["temperature"], settings["top_k"], settings["top_p"], settings["guidance"]))


def test_unknown_model_is_a_user_error(registry, store):
    with pytest.raises(gr.Error, match="unknown model 'nope'"):
        generate(registry, store, "nope")


# ----------------------------------------------------------------------------- generation per conditioning type


def test_generate_frames_and_actions_streams_every_slice(registry, store, tmp_path):
    image = still_image(tmp_path / "start.png", (40, 30), mode="RGBA")
    actions = actions_table(preset_actions("circle", WINDOW))
    updates = generate(registry, store, "pusher-tiny", str(image), actions=actions, n_samples=2)
    t = registry.info("pusher-tiny").latent_shape[0]
    assert len(updates) == t + 1  # one preview per latent slice, then the result
    assert [u.tokens_done for u in updates[:t]] == [16 * (i + 1) for i in range(t)]
    assert all(u.video is None for u in updates[:-1])
    assert "tokens/s" in updates[0].progress and "/ 48 tokens" in updates[0].progress
    final = updates[-1]
    assert final.finished and final.seed == 7
    assert final.session.frames.shape == (2, WINDOW, RESOLUTION, RESOLUTION, 3)
    stream = probe_stream(final.video)
    assert (stream.codec, stream.pix_fmt) == ("h264", "yuv420p")
    scale = display_scale(RESOLUTION)
    width = (2 * RESOLUTION + 1) * scale  # two samples and a 1-pixel gap, upscaled
    assert (stream.width, stream.height) == (width + width % 2, RESOLUTION * scale)  # yuv420p: even sizes
    assert final.gif.endswith(".gif") and Image.open(final.gif).n_frames >= 2
    # The preview grows frame by frame: later previews show more (non-placeholder) pixels.
    assert updates[0].preview.shape == final.preview.shape


def test_generate_is_reproducible_by_seed(registry, store):
    first = generate(registry, store, "uncond-tiny", seed=11)[-1].session.frames
    again = generate(registry, store, "uncond-tiny", seed=11)[-1].session.frames
    other = generate(registry, store, "uncond-tiny", seed=12)[-1].session.frames
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_generate_class_conditional_uses_the_label(registry, store):
    zero = generate(registry, store, "digits-tiny", label="zero", seed=3)[-1].session
    two = generate(registry, store, "digits-tiny", label="two", seed=3)[-1].session
    assert zero.label == "zero" and zero.frames.shape[1] == WINDOW
    assert not np.array_equal(zero.frames, two.frames)


def test_generate_longer_than_the_window_slides(registry, store):
    final = generate(registry, store, "uncond-tiny", n_frames=WINDOW + 4)[-1]
    assert final.session.frames.shape[1] == WINDOW + 4


def test_start_image_is_optional_for_a_prefix_model(registry, store, tmp_path):
    gray = still_image(tmp_path / "gray.png", (20, 50), mode="L")
    dark = tmp_path / "dark.png"
    Image.new("RGB", (16, 16), (5, 5, 5)).save(dark)
    # Same seed, different start: the held image (the first latent slice, encoded) changes the video.
    with_gray = generate(registry, store, "uncond-tiny", image=str(gray), seed=4)[-1].session.frames
    with_dark = generate(registry, store, "uncond-tiny", image=str(dark), seed=4)[-1].session.frames
    without = generate(registry, store, "uncond-tiny", seed=4)[-1].session.frames
    assert with_gray.shape == with_dark.shape == without.shape
    assert not np.array_equal(with_gray, with_dark) and not np.array_equal(with_gray, without)


def test_randomized_seed_is_reported(registry, store):
    updates = run(generate_updates(registry, store, "uncond-tiny", None, None, None, 5, True,
                                   1, WINDOW, 1.0, 0, 1.0, 1.0))
    assert updates[-1].seed is not None and f"seed {updates[-1].seed}" in updates[-1].progress


# ----------------------------------------------------------------------------- continuing


def test_continue_extends_one_sample_with_new_actions(registry, store, tmp_path):
    image = still_image(tmp_path / "start.png")
    first = generate(registry, store, "pusher-tiny", str(image), actions=zero_table(WINDOW), n_samples=2)[-1]
    new_actions = actions_table(preset_actions("push right", 4))
    updates = run(continue_generation(registry, store, first.session, 2, new_actions, 9,
                                                False, 3, 4, 1.0, 0, 1.0, 1.0))
    session = updates[-1].session
    assert session.frames.shape == (3, WINDOW + 4, RESOLUTION, RESOLUTION, 3)
    # The past is kept exactly; the three futures share it.
    past = first.session.frames[1]
    assert all(np.array_equal(future[:WINDOW], past) for future in session.frames)
    assert session.actions.shape == (WINDOW + 4, 2)
    assert np.allclose(session.actions[WINDOW:], preset_actions("push right", 4))
    assert probe_stream(updates[-1].video).codec == "h264"


@pytest.mark.parametrize("model, label", [("digits-tiny", "one"), ("uncond-tiny", None)])
def test_continue_without_actions(registry, store, model, label):
    first = generate(registry, store, model, label=label)[-1]
    final = run(continue_generation(registry, store, first.session, 1, None, 2, False, 1,
                                              3, 1.0, 0, 1.0, 1.0))[-1]
    assert final.session.frames.shape[1] == WINDOW + 3
    assert final.session.label == label


def test_continue_needs_a_result_first(registry, store):
    with pytest.raises(gr.Error, match="generate a video first"):
        run(continue_generation(registry, store, None, 1, None, 2, False, 1, 3, 1.0, 0, 1.0, 1.0))


def test_continuation_context_is_whole_slices_below_the_window(registry):
    info = registry.info("pusher-tiny")  # 3 slices of 2 frames
    assert continuation_context(info, 20) == 4
    assert continuation_context(info, 3) == 2
    assert continuation_context(info, 1) == 1  # the conditioning frame


# ----------------------------------------------------------------------------- generation errors


def test_generation_errors_are_clear(registry, store, tmp_path):
    image = str(still_image(tmp_path / "start.png"))
    cases = [
        (dict(model="pusher-tiny", actions=zero_table(WINDOW)), "first frame"),
        (dict(model="pusher-tiny", image=image, actions=zero_table(3)), "3 rows but 6 frames"),
        (dict(model="pusher-tiny", image=image, actions=pd.DataFrame({"dx": [1.0] * 6, "dy": ["a"] * 6})),
         "row 1, column dy: 'a' is not a number"),
        (dict(model="digits-tiny", label="seven"), "not one of this model's classes"),
        (dict(model="digits-tiny", label=None), "choose a class"),
        (dict(model="uncond-tiny", temperature=0.0), "temperature"),
        (dict(model="uncond-tiny", top_k=2.5), "top_k"),
        (dict(model="uncond-tiny", top_p=1.5), "top_p"),
        (dict(model="uncond-tiny", guidance=3.0), "cfg_scale"),
        (dict(model="uncond-tiny", n_samples=5), "number of samples must be between 1 and 4"),
        (dict(model="uncond-tiny", n_frames=0), "number of frames must be between"),
        (dict(model="uncond-tiny", seed=-1), "seed must be between"),
        (dict(model="uncond-tiny", image=str(tmp_path / "missing.png")), "not found"),
    ]
    for kwargs, message in cases:
        model = kwargs.pop("model")
        with pytest.raises(gr.Error, match=message.replace("(", r"\(").replace(")", r"\)")):
            generate(registry, store, model, **kwargs)


def test_huge_and_broken_images_are_refused(registry, store, tmp_path):
    huge = tmp_path / "huge.png"
    Image.new("L", (5000, 4200)).save(huge)  # 21 MP, compresses to a few kB
    with pytest.raises(gr.Error, match="over the limit of 20.0 MP"):
        generate(registry, store, "pusher-tiny", str(huge), actions=zero_table(WINDOW))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(gr.Error, match="not a readable image"):
        generate(registry, store, "pusher-tiny", str(broken), actions=zero_table(WINDOW))

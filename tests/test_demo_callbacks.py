"""The demo's callbacks called directly: each conditioning type, continuing, model cards, errors (the Reconstruct
tab: test_reconstruct_tab.py)."""
from __future__ import annotations

import json

import gradio as gr
import numpy as np
import pandas as pd
import pytest
from demo_helpers import RESOLUTION, WINDOW, make_checkpoints, still_image
from PIL import Image

from demo import callbacks
from demo.callbacks import ModelRegistry, OutputStore
from demo.action_presets import ACTION_PRESETS, preset_actions
from demo.examples import example_frames, example_videos
from videogpt_core.pipeline import VideoGPTPipeline
from videogpt_core.video_io import probe_stream


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return make_checkpoints(tmp_path_factory.mktemp("checkpoints"))


@pytest.fixture(scope="module")
def registry(folders):
    return ModelRegistry.from_paths([next(iter(folders.values())).parent], device="cpu")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return OutputStore(tmp_path_factory.mktemp("outputs"))


def zero_table(n_frames: int) -> pd.DataFrame:
    return callbacks.actions_table(np.zeros((n_frames, 2), np.float32))


def run(updates) -> list[callbacks.GenerationUpdate]:
    return list(updates)


SAMPLING = dict(temperature=1.0, top_k=0, top_p=1.0, guidance=1.0)


def generate(registry, store, model, image=None, label=None, actions=None, seed=7, n_samples=1, n_frames=WINDOW,
             **overrides):
    settings = {**SAMPLING, **overrides}
    return run(callbacks.generate(registry, store, model, image, label, actions, settings["temperature"],
                                  settings["top_k"], settings["top_p"], settings["guidance"], seed, False, n_samples,
                                  n_frames))


# ----------------------------------------------------------------------------- finding models


def test_registry_finds_every_pipeline_folder(folders, registry):
    assert registry.names == sorted(folders)
    assert registry.problems == []
    info = registry.info("pusher-tiny")
    assert info.needs_frames and info.action_dim == 2 and not info.class_names
    assert registry.info("digits-tiny").class_names == ["zero", "one", "two"]
    assert registry.info("uncond-tiny").conditioning() == "nothing (unconditional)"


def test_find_pipeline_folders_takes_a_pipeline_folder_or_a_folder_of_them(folders, tmp_path):
    single = callbacks.find_pipeline_folders([folders["digits-tiny"]])
    assert single == {"digits-tiny": folders["digits-tiny"]}
    with pytest.raises(FileNotFoundError, match="no such checkpoint folder"):
        callbacks.find_pipeline_folders([tmp_path / "missing"])
    assert callbacks.find_pipeline_folders([tmp_path / "missing"], must_exist=False) == {}


def test_empty_registry_says_where_models_go(tmp_path):
    registry = ModelRegistry.from_paths([tmp_path], device="cpu")
    assert registry.names == []
    assert "checkpoints/" in registry.status_message() and "--checkpoint" in registry.status_message()
    with pytest.raises(gr.Error, match="No model found"):
        registry.info("anything")
    assert callbacks.model_card(registry, None) == callbacks.NO_MODEL_MESSAGE


def test_unreadable_folder_is_reported_not_fatal(folders, tmp_path):
    broken = tmp_path / "broken"
    (broken / "vqvae").mkdir(parents=True)
    (broken / "prior").mkdir()
    (broken / "vqvae" / "config.json").write_text("{not json")
    registry = ModelRegistry({"broken": broken, "digits-tiny": folders["digits-tiny"]}, device="cpu")
    assert registry.names == ["digits-tiny"]
    assert "broken" in registry.status_message() and "not valid JSON" in registry.status_message()


def test_models_are_loaded_once(registry):
    assert registry.pipeline("uncond-tiny") is registry.pipeline("uncond-tiny")


def test_a_model_that_fails_to_compile_is_served_uncompiled(folders, monkeypatch, capsys):
    def no_compiler(pipeline):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(VideoGPTPipeline, "warm_up", no_compiler)
    registry = ModelRegistry({"digits-tiny": folders["digits-tiny"]}, device="cpu", compile=True)
    pipeline = registry.pipeline("digits-tiny")
    assert not pipeline.compiled
    assert "could not compile model digits-tiny" in capsys.readouterr().err
    assert pipeline.generate(label="one", seed=0).frames.shape[0] == 1


def test_unknown_model_is_a_user_error(registry, store):
    with pytest.raises(gr.Error, match="unknown model 'nope'"):
        generate(registry, store, "nope")


# ----------------------------------------------------------------------------- generation per conditioning type


def test_generate_frames_and_actions_streams_every_slice(registry, store, tmp_path):
    image = still_image(tmp_path / "start.png", (40, 30), mode="RGBA")
    actions = callbacks.actions_table(preset_actions("circle", WINDOW))
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
    scale = callbacks.display_scale(RESOLUTION)
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
    updates = run(callbacks.generate(registry, store, "uncond-tiny", None, None, None, 1.0, 0, 1.0, 1.0, 5, True,
                                     1, WINDOW))
    assert updates[-1].seed is not None and f"seed {updates[-1].seed}" in updates[-1].progress


# ----------------------------------------------------------------------------- continuing


def test_continue_extends_one_sample_with_new_actions(registry, store, tmp_path):
    image = still_image(tmp_path / "start.png")
    first = generate(registry, store, "pusher-tiny", str(image), actions=zero_table(WINDOW), n_samples=2)[-1]
    new_actions = callbacks.actions_table(preset_actions("push right", 4))
    updates = run(callbacks.continue_generation(registry, store, first.session, 2, new_actions, 1.0, 0, 1.0, 1.0, 9,
                                                False, 3, 4))
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
    final = run(callbacks.continue_generation(registry, store, first.session, 1, None, 1.0, 0, 1.0, 1.0, 2, False, 1,
                                              3))[-1]
    assert final.session.frames.shape[1] == WINDOW + 3
    assert final.session.label == label


def test_continue_needs_a_result_first(registry, store):
    with pytest.raises(gr.Error, match="generate a video first"):
        run(callbacks.continue_generation(registry, store, None, 1, None, 1.0, 0, 1.0, 1.0, 2, False, 1, 3))


def test_continuation_context_is_whole_slices_below_the_window(registry):
    info = registry.info("pusher-tiny")  # 3 slices of 2 frames
    assert callbacks.continuation_context(info, 20) == 4
    assert callbacks.continuation_context(info, 3) == 2
    assert callbacks.continuation_context(info, 1) == 1  # the conditioning frame


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


def test_start_image_any_format(tmp_path):
    rgba = callbacks.load_start_image(str(still_image(tmp_path / "a.png", mode="RGBA")))
    gray = callbacks.load_start_image(str(still_image(tmp_path / "g.png", mode="L")))
    sixteen = tmp_path / "i16.png"
    Image.fromarray(np.full((8, 8), 65535, np.uint16)).save(sixteen)
    assert rgba.shape == (30, 40, 3) and rgba.dtype == np.uint8
    assert gray.shape == (30, 40, 3) and np.array_equal(gray[..., 0], gray[..., 2])
    assert callbacks.load_start_image(str(sixteen)).min() == 255
    assert callbacks.load_start_image(None) is None


# ----------------------------------------------------------------------------- actions


def test_parse_actions_text_forms():
    assert callbacks.parse_actions_text("3,0; 3,0; 0,2", 2).tolist() == [[3, 0], [3, 0], [0, 2]]
    assert callbacks.parse_actions_text("1 -1\n0.5 2", 2).tolist() == [[1, -1], [0.5, 2]]
    assert callbacks.parse_actions_text("2,0 x3; 0,1", 2).tolist() == [[2, 0]] * 3 + [[0, 1]]


@pytest.mark.parametrize("text, message", [
    ("3,0; 3,a; 0,2", "entry 2 \\('3,a'\\): 'a' is not a number"),
    ("3,0; 1,2,3", "entry 2 \\('1,2,3'\\) has 3 value"),
    ("", "no actions in the text"),
    ("1,inf", "not a finite number"),
    ("1,0 x0", "repeat count"),
])
def test_parse_actions_text_errors_name_the_entry(text, message):
    with pytest.raises(ValueError, match=message):
        callbacks.parse_actions_text(text, 2)
    with pytest.raises(gr.Error, match=message):
        callbacks.apply_actions_text(text, 2)


def test_actions_text_round_trip():
    actions = preset_actions("zigzag", 12)
    text = callbacks.actions_to_text(actions)
    assert " x" in text  # runs are compressed
    assert np.allclose(callbacks.parse_actions_text(text, 2), actions)


def test_actions_from_table_accepts_every_shape_gradio_sends():
    rows = [[1, 2], [3, 4]]
    expected = np.asarray(rows, np.float32)
    for table in (pd.DataFrame(rows, columns=["dx", "dy"]), rows, np.asarray(rows), {"headers": ["dx", "dy"],
                                                                                     "data": rows}):
        assert np.array_equal(callbacks.actions_from_table(table, 2), expected)
    with pytest.raises(ValueError, match="row 2 has 3 values"):
        callbacks.actions_from_table([[1, 2], [1, 2, 3]], 2)
    with pytest.raises(ValueError, match="row 1, column dx is empty"):
        callbacks.actions_from_table([["", 1]], 2)
    with pytest.raises(ValueError, match="not a finite number"):
        callbacks.actions_from_table([[float("nan"), 1]], 2)


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
    table = callbacks.actions_table(np.ones((3, 2), np.float32))
    assert callbacks.resized_actions(table, 5, 2).tolist() == [[1, 1]] * 3 + [[0, 0]] * 2
    assert callbacks.resized_actions(table, 2, 2).tolist() == [[1, 1]] * 2
    assert callbacks.resized_actions(None, 2, 2).tolist() == [[0, 0]] * 2


def test_sampling_settings_map_off_values_to_none():
    assert callbacks.sampling_settings(0.8, 0, 1.0, 1.0) == dict(temperature=0.8, top_k=None, top_p=1.0,
                                                                 cfg_scale=None)
    assert callbacks.sampling_settings(1, 40.0, 0.9, 2.0) == dict(temperature=1.0, top_k=40, top_p=0.9,
                                                                  cfg_scale=2.0)


# ----------------------------------------------------------------------------- model cards and controls


def test_generated_model_card(registry):
    card = callbacks.model_card(registry, "pusher-tiny")
    assert card.startswith("# pusher-tiny")
    assert "a first frame" in card and "per-frame actions (dx, dy)" in card
    assert "| `n_codes` | 16 |" in card and "| prior |" in card and "M |" in card
    assert "No metrics files" in card


def test_model_card_prefers_readme_and_shows_metrics(folders, tmp_path):
    import shutil

    copy = shutil.copytree(folders["digits-tiny"], tmp_path / "digits-copy")
    (copy / "eval.json").write_text(json.dumps({"psnr": 31.23456, "fvd": 100, "nested": {"skip": 1}}))
    registry = ModelRegistry.from_paths([copy], device="cpu")
    card = callbacks.model_card(registry, "digits-copy")
    assert "### eval" in card and "| psnr | 31.23 |" in card and "nested" not in card
    (copy / "README.md").write_text("---\nlicense: mit\n---\n# Digits\nTrained for 1 hour.\n")
    assert callbacks.model_card(registry, "digits-copy") == "# Digits\nTrained for 1 hour.\n"


def test_model_controls_follow_the_conditioning(registry):
    pusher = callbacks.model_controls(registry, "pusher-tiny")
    assert pusher.start_image_visible and "required" in pusher.start_image_label
    assert pusher.action_dim == 2 and pusher.actions.shape == (WINDOW, 2) and not pusher.class_names
    assert not pusher.guidance_visible  # trained without condition dropout: no unconditional branch
    digits = callbacks.model_controls(registry, "digits-tiny")
    assert digits.guidance_visible and digits.guidance == callbacks.DEFAULT_GUIDANCE and pusher.guidance == 1.0
    assert digits.class_names == ["zero", "one", "two"] and digits.actions is None
    assert "optional" in digits.start_image_label
    uncond = callbacks.model_controls(registry, "uncond-tiny")
    assert not uncond.guidance_visible and uncond.max_frames == 4 * WINDOW


# ----------------------------------------------------------------------------- pictures and examples


def test_progress_grid_marks_frames_to_come():
    frames = np.full((2, 3, 4, 4, 3), 200, np.uint8)
    grid = callbacks.progress_grid(frames, total_frames=5, columns=4, size=4)
    assert grid.shape == (2 * (2 * 5 - 1) + 3, 4 * 5 - 1, 3)
    assert grid[0, 0, 0] == 200 and grid[5, 0, 0] == 48  # frame 0 drawn, frame 4 (second row) still to come
    assert grid[5, 5, 0] == 255  # no frame 5: background


def test_code_palette():
    palette = callbacks.code_palette(64)
    assert len({tuple(c) for c in palette}) == 64


def test_example_assets_exist_and_are_small():
    frames, videos = example_frames(), example_videos()
    assert len(frames) >= 4 and len(videos) >= 2
    total = sum(__import__("os").path.getsize(p) for p, _ in frames) + sum(__import__("os").path.getsize(p)
                                                                          for p in videos)
    assert total < 2 * 1024 * 1024
    assert callbacks.example_path(frames, 1) == frames[1][0]
    assert callbacks.example_path(frames, None, frames[2][1]) == frames[2][0]


def test_output_store_keeps_only_the_newest(tmp_path):
    store = OutputStore(tmp_path / "out", keep=2)
    folders = [store.new_folder() for _ in range(3)]
    assert not folders[0].exists() and folders[1].exists() and folders[2].exists()


def test_generation_runs_under_spaces_gpu_when_available(registry, monkeypatch):
    import importlib
    import sys
    import types

    import demo.layout

    wrapped = []
    fake_spaces = types.ModuleType("spaces")
    fake_spaces.GPU = lambda fn: wrapped.append(fn.__name__) or fn
    monkeypatch.setitem(sys.modules, "spaces", fake_spaces)
    try:
        layout = importlib.reload(demo.layout)
        layout.build_demo(registry)
        assert sorted(wrapped) == ["run_continue", "run_generate", "run_reconstruct"]
    finally:
        monkeypatch.delitem(sys.modules, "spaces")
        importlib.reload(demo.layout)

"""PlaySession: one player's world stepped slice by slice (tiny random models, CPU, seconds)."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from tiny_models import LONGER_VQVAE, tiny_pipeline

from videogpt_core.inference.decode_step import DecodeStep
from videogpt_core.inference.pipeline import VideoGPTPipeline
from videogpt_core.inference.play import PlaySession

ACTIONS = dict(action_dim=2, action_embed_dim=6, action_range=[[-3.0, 3.0], [-3.0, 3.0]])


@pytest.fixture(scope="module")
def pipeline():
    # Three latent slices of two 16x16 frames per window, first frame + actions.
    return tiny_pipeline("frames", vqvae_overrides=LONGER_VQVAE, seed=3, **ACTIONS)


def start_image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (20, 24, 3), dtype=np.uint8)


def play(session: PlaySession, rows) -> list[np.ndarray]:
    return [session.step(row).frames for row in rows]


def test_steps_grow_the_episode_past_the_window(pipeline):
    session = PlaySession(pipeline, start_image(), seed=1)
    fpl, window = pipeline.config.frames_per_latent, pipeline.config.sequence_length
    assert len(session.frames) == 1 and session.next_step_frames == fpl - 1
    first = session.step([1.0, 0.0])
    assert first.frames.shape == (fpl - 1, 16, 16, 3) and first.episode_frames == fpl
    for _ in range(3 * window):  # far beyond one window: the model sees the last slices each time
        result = session.step([0.0, -2.0])
        assert result.frames.shape == (fpl, 16, 16, 3) and result.frames.dtype == np.uint8
    frames, actions = session.frames, session.actions
    assert len(frames) == len(actions) == fpl + 3 * window * fpl
    assert session.n_steps == 1 + 3 * window
    np.testing.assert_array_equal(actions[0], [0, 0])
    np.testing.assert_array_equal(actions[1:fpl], [[1, 0]] * (fpl - 1))
    np.testing.assert_array_equal(actions[-1], [0, -2])
    assert len({frame.tobytes() for frame in frames[fpl:]}) > 1  # the world moves


def test_steps_keep_the_window_cache_and_slide_without_re_encoding(pipeline, monkeypatch):
    """Within a window a step feeds only its own slice's tokens; a full window slides to its last slices'
    codes as sampled: nothing is encoded again after the start, and each window is prefilled once."""
    calls = {"encode": 0, "prefill": 0, "step": 0}
    prior = pipeline.prior

    def counted(name, function):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(pipeline, "encode_prefix", counted("encode", pipeline.encode_prefix))
    monkeypatch.setattr(prior, "prefill", counted("prefill", prior.prefill))
    monkeypatch.setattr(pipeline, "decode_step", DecodeStep("eager", counted("step", prior.decode_step)))
    t, h, w = prior.latent_shape
    session = PlaySession(pipeline, start_image(), seed=4)
    play(session, [[1.0, 0.0]] * t)  # fills the first window
    assert calls == {"encode": 0, "prefill": 1, "step": t * h * w - 1}
    play(session, [[0.0, 1.0]] * 3)  # each further step: a window slid by one slice, prefilled once
    assert calls["encode"] == 0 and calls["prefill"] == 4 and calls["step"] == (t + 3) * h * w - 4


def test_undo_and_reset_restore_the_episode(pipeline):
    session = PlaySession(pipeline, start_image(), seed=2)
    assert not session.undo()  # nothing to undo at the start
    play(session, [[1, 1], [2, 0]])
    before = session.frames.copy()
    before_actions = session.actions.copy()
    third = session.step([-3, 0]).frames
    np.testing.assert_array_equal(session.frames[-len(third):], third)
    assert session.undo()
    np.testing.assert_array_equal(session.frames, before)
    np.testing.assert_array_equal(session.actions, before_actions)
    # The same step again gives the same frames (the seed follows the frame it starts at); another action
    # changes them.
    np.testing.assert_array_equal(session.step([-3, 0]).frames, third)
    session.undo()
    assert not np.array_equal(session.step([3, 3]).frames, third)
    session.reset()
    assert session.n_steps == 0 and len(session.frames) == 1
    assert session.step([1, 1]).frames.shape[0] == pipeline.config.frames_per_latent - 1


@pytest.mark.slow
def test_a_compiled_world_model_plays_with_the_whole_cache_and_plays_what_eager_plays(pipeline):
    # compile=True on a CPU gives a model with per-frame actions the static-shape step (every step reads the
    # whole cache under a mask, so a play's first steps cost what its later ones do); same frames as eager.
    compiled = VideoGPTPipeline(pipeline.vqvae, pipeline.prior, device="cpu", vqvae_bf16=False, compile=True)
    assert compiled.decode_step.mode == "whole_cache"
    rows = [[1, 0], [0, 1], [-1, 0], [0, 0]] * 2  # past the first window: the slid window too
    eager, played = PlaySession(pipeline, start_image(), seed=5), PlaySession(compiled, start_image(), seed=5)
    play(eager, rows), play(played, rows)
    np.testing.assert_array_equal(eager.frames, played.frames)


def test_same_seed_same_keys_same_world(pipeline):
    rows = [[1, 0], [0, 1], [-1, 0], [0, 0]]
    one = PlaySession(pipeline, start_image(), seed=5)
    two = PlaySession(pipeline, start_image(), seed=5)
    play(one, rows), play(two, rows)
    np.testing.assert_array_equal(one.frames, two.frames)


def test_concurrent_sessions_stay_consistent(pipeline):
    """Sessions stepped from several threads at once end exactly where the same sessions stepped one after
    another end: the shared pipeline keeps no state between them."""
    plans = {seed: [[(-1) ** seed * 2.0, float(step % 3) - 1.0] for step in range(6)] for seed in range(4)}
    serial = {}
    for seed, rows in plans.items():
        session = PlaySession(pipeline, start_image(seed), seed=seed)
        play(session, rows)
        serial[seed] = session.frames
    sessions = {seed: PlaySession(pipeline, start_image(seed), seed=seed) for seed in plans}
    errors = []

    def run(seed):
        try:
            play(sessions[seed], plans[seed])
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(seed,)) for seed in plans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for seed in plans:
        np.testing.assert_array_equal(sessions[seed].frames, serial[seed])


def test_one_session_shared_by_threads_serialises_its_steps(pipeline):
    session = PlaySession(pipeline, start_image(), seed=6)
    threads = [threading.Thread(target=session.step, args=([1.0, 0.0],)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    fpl = pipeline.config.frames_per_latent
    assert session.n_steps == 6 and len(session.frames) == len(session.actions) == 1 + (fpl - 1) + 5 * fpl


def test_a_clip_start_keeps_its_last_whole_slices_and_actions(pipeline):
    fpl = pipeline.config.frames_per_latent
    clip = np.random.default_rng(1).integers(0, 256, (3 * fpl + 1, 16, 16, 3), dtype=np.uint8)
    rows = np.random.default_rng(2).uniform(-3, 3, (len(clip), 2)).astype(np.float32)
    session = PlaySession(pipeline, clip, actions=rows, seed=0)
    kept = (pipeline.config.latent_shape[0] - 1) * fpl  # the window less one slice
    np.testing.assert_array_equal(session.frames, clip[-kept:])
    np.testing.assert_allclose(session.actions, rows[-kept:])
    assert session.next_step_frames == fpl
    short = PlaySession(pipeline, clip, seed=0, context_slices=1)
    assert len(short.frames) == fpl


def test_bad_use_is_refused_and_leaves_the_episode_as_it_was(pipeline):
    session = PlaySession(pipeline, start_image(), seed=0)
    session.step([1, 0])
    frames = session.frames.copy()
    with pytest.raises(ValueError, match="one action row of 2"):
        session.step([1, 0, 0])
    with pytest.raises(ValueError, match="range"):
        session.step([9.0, 0])
    with pytest.raises(ValueError, match="NaN"):
        session.step([np.nan, 0])
    with pytest.raises(ValueError, match="temperature"):
        session.set_sampling(temperature=0)
    np.testing.assert_array_equal(session.frames, frames)
    assert session.n_steps == 1
    with pytest.raises(ValueError, match="uint8"):
        PlaySession(pipeline, start_image().astype(np.float32))
    with pytest.raises(ValueError, match="context_slices"):
        PlaySession(pipeline, start_image(), context_slices=3)


def test_models_that_cannot_be_played_are_refused():
    with pytest.raises(ValueError, match="not action-conditional"):
        PlaySession(tiny_pipeline("frames", vqvae_overrides=LONGER_VQVAE), start_image())
    with pytest.raises(ValueError, match="class-conditional"):
        PlaySession(tiny_pipeline("all", vqvae_overrides=LONGER_VQVAE), start_image())
    video_prediction = tiny_pipeline("actions", vqvae_overrides=LONGER_VQVAE)
    with pytest.raises(ValueError, match="at least 2 frames"):
        PlaySession(video_prediction, start_image())  # no conditioning frame: needs a whole slice
    session = PlaySession(video_prediction, np.stack([start_image()] * 2), seed=0)
    assert session.step([0.5, 0.5]).frames.shape == (2, 16, 16, 3)


def test_max_frames_keeps_the_newest_frames(pipeline):
    fpl = pipeline.config.frames_per_latent
    session = PlaySession(pipeline, start_image(), seed=0, max_frames=4 * fpl)
    play(session, [[1, 0]] * 8)
    assert len(session.frames) == len(session.actions) == 4 * fpl
    undone = 0
    while session.undo():
        undone += 1
    assert 1 <= undone < 8 and len(session.frames) >= fpl
    assert session.step([0, 1]).frames.shape == (fpl, 16, 16, 3)


def test_a_full_window_keeps_three_quarters_of_itself_by_default():
    """A prefill of the kept slices once every quarter window, not at every step; small windows keep all but one."""
    from videogpt_core.inference.play import default_context_slices

    assert [default_context_slices(t) for t in (2, 3, 4, 8, 16)] == [1, 2, 3, 6, 12]

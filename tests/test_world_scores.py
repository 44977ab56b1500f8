"""World-model scores: colour locators and pusher rollout scores, the digit classifier, the first frame kept
(a causal codec's code prefix) and the held-turn scores on panned textures (the simulator's own replays are
in test_simulated_worlds.py)."""
import time

import numpy as np
import pytest
import torch

from tiny_models import TINY_FRAME_ENCODER, tiny_pipeline, tiny_prior, tiny_vqvae
from videogpt_core.data.worlds import generate_digits_episode, generate_pusher_episode, split_seeds
from videogpt_core.data.worlds.pusher import make_scene, render_pusher_frames
from videogpt_core.evaluation.clips import sample_rollouts
from videogpt_core.evaluation.digit_classifier import (
    DigitClassifier, classify_clips, digit_accuracy, load_digit_classifier, save_digit_classifier, train_digit_classifier,
)
from videogpt_core.evaluation.first_frame import codec_first_frames, first_frame_scores
from videogpt_core.evaluation.held_turns import (
    held_turn_actions, held_turn_agreement, simulator_turn_shifts, true_frames_turn_shifts,
)
from videogpt_core.evaluation.pusher_world import locate_by_colour, locate_gripper, pusher_rollout_scores
from videogpt_core.inference.pipeline import VideoGPTPipeline
from videogpt_core.inference.sampling_options import SamplingOptions

VIZDOOM_NAMES = ["TURN_LEFT", "TURN_RIGHT", "MOVE_FORWARD"]


def _pusher_batch(seeds, n_frames=10, shift=(0.0, 0.0)):
    """(true frames, frames rendered with every position shifted, padded positions, padded colours)."""
    true_frames, shifted_frames, positions, colours = [], [], [], []
    for seed in seeds:
        episode = generate_pusher_episode(seed, n_frames)
        true_frames.append(episode.frames)
        shifted_frames.append(render_pusher_frames(make_scene(seed), episode.positions + np.float32(shift)))
        padded = np.full((n_frames, 4, 2), np.nan, np.float32)
        padded[:, : episode.positions.shape[1]] = episode.positions
        positions.append(padded)
        padded_colours = np.zeros((3, 3), np.uint8)
        padded_colours[: len(episode.object_colours)] = episode.object_colours
        colours.append(padded_colours)
    return np.stack(true_frames), np.stack(shifted_frames), np.stack(positions), np.stack(colours)


def test_locators_find_rendered_things():
    episode = generate_pusher_episode(11, 8)
    objects = locate_by_colour(episode.frames, episode.object_colours)
    assert objects.shape == (8, len(episode.object_colours), 2)
    np.testing.assert_allclose(objects, episode.positions[:, 1:], atol=0.35)
    np.testing.assert_allclose(locate_gripper(episode.frames), episode.positions[:, 0], atol=0.35)
    absent = locate_by_colour(np.zeros((2, 64, 64, 3), np.uint8), np.array([[220, 45, 45]]))
    assert np.isnan(absent).all()


def test_true_rollout_scores_zero_error_and_shift_scores_the_shift():
    true_frames, _, positions, colours = _pusher_batch([0, 1, 2])
    perfect = pusher_rollout_scores(true_frames, true_frames, positions, colours)
    assert perfect["gripper_error_px"] < 0.35 and perfect["object_error_px"] < 0.35
    assert perfect["gripper_found"] == 1.0 and perfect["object_found"] == 1.0
    assert perfect["psnr"] == float("inf")
    _, shifted, _, _ = _pusher_batch([0, 1, 2], shift=(3.0, 0.0))
    scores = pusher_rollout_scores(shifted, true_frames, positions, colours)
    assert abs(scores["gripper_error_px"] - 3.0) < 0.5 and abs(scores["object_error_px"] - 3.0) < 0.5
    assert 10 < scores["psnr"] < 40
    blank = pusher_rollout_scores(np.zeros_like(true_frames), true_frames, positions, colours)
    assert blank["object_found"] == 0.0 and np.isnan(blank["object_error_px"])
    with pytest.raises(ValueError, match="sampled and true frames"):
        pusher_rollout_scores(true_frames[:, :5], true_frames, positions, colours)


def test_classifier_shapes_and_save_load_round_trip(tmp_path):
    model = DigitClassifier().eval()
    assert 20_000 < sum(p.numel() for p in model.parameters()) < 100_000
    clips = np.stack([generate_digits_episode(seed, 3).frames for seed in range(4)])
    predictions = classify_clips(model, clips)
    assert predictions.shape == (4,) and predictions.dtype == np.int64
    assert classify_clips(model, clips[0]).shape == (1,)
    loaded = load_digit_classifier(save_digit_classifier(model, tmp_path / "clf"))
    np.testing.assert_array_equal(classify_clips(loaded, clips), predictions)
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_digit_classifier(tmp_path / "missing")
    with pytest.raises(ValueError, match="uint8"):
        classify_clips(model, clips.astype(np.float32))


@pytest.mark.slow
def test_classifier_reaches_95_percent_on_held_out_clips(tmp_path):
    train = [generate_digits_episode(int(seed), 8) for seed in split_seeds("train", 800)]
    test = [generate_digits_episode(int(seed), 8) for seed in split_seeds("test", 200)]
    start = time.perf_counter()
    model = train_digit_classifier(np.stack([e.frames for e in train]), np.array([e.label for e in train]),
                                   steps=300, seed=0)
    print(f"digit classifier: trained in {time.perf_counter() - start:.1f} s")
    test_clips, test_labels = np.stack([e.frames for e in test]), np.array([e.label for e in test])
    accuracy = digit_accuracy(model, test_clips, test_labels)
    print(f"digit classifier: held-out clip accuracy {accuracy:.3f}")
    assert accuracy >= 0.95
    # Wrong labels score low, so the score can tell conditioned samples from unconditioned ones.
    assert digit_accuracy(model, test_clips, (test_labels + 1) % 10) < 0.1


def _pusher_truth(n_episodes=3, n_frames=4):
    episodes = [generate_pusher_episode(seed, n_frames) for seed in range(n_episodes)]
    return np.stack([e.frames for e in episodes]), torch.from_numpy(np.stack([e.actions for e in episodes]))


def test_a_code_prefix_through_a_causal_codec_keeps_frame_1_as_the_codec_does():
    truth, actions = _pusher_truth()
    vqvae = tiny_vqvae(0, causal=True, downsample=(1, 4, 4))  # one latent slice per frame
    pipeline = VideoGPTPipeline(vqvae, tiny_prior(vqvae, "actions", 1), device="cpu", vqvae_bf16=False)
    rollouts, conditioning = sample_rollouts(pipeline, truth, {"true": actions}, 2, SamplingOptions(), seed=0)
    assert "code prefix" in conditioning
    np.testing.assert_array_equal(rollouts["true"][:, :1], codec_first_frames(pipeline, truth, batch_size=2))
    scores = first_frame_scores(pipeline, truth, rollouts["true"], batch_size=2)
    assert np.isfinite(scores["codec_psnr"]) and scores["gap_db"] == 0.0
    assert scores["rollout_psnr"] == scores["codec_psnr"]
    blanked = rollouts["true"].copy()
    blanked[:, 0] = 0  # a model that loses the given frame
    lost = first_frame_scores(pipeline, truth, blanked, batch_size=2)
    assert lost["codec_psnr"] == scores["codec_psnr"] and lost["gap_db"] > 1.0
    with pytest.raises(ValueError, match="like the true clips"):
        first_frame_scores(pipeline, truth, rollouts["true"][:, :, :32], batch_size=2)


def test_frame_1_of_a_prior_that_cross_attends_is_sampled():
    truth, actions = _pusher_truth()
    pipeline = tiny_pipeline("actions", n_cond_frames=1, **TINY_FRAME_ENCODER)  # the default, non-causal codec
    rollouts, conditioning = sample_rollouts(pipeline, truth, {"true": actions}, 3, SamplingOptions(), seed=0)
    assert "code prefix" not in conditioning
    assert not np.array_equal(rollouts["true"][:, :1], codec_first_frames(pipeline, truth, batch_size=3))
    assert first_frame_scores(pipeline, truth, truth, batch_size=3)["rollout_psnr"] == float("inf")


def _panned(n_frames, step_px, seed=0):
    """A random texture moved sideways by step_px per frame (+ = scene moves right, as turning left moves it):
    (T, 64, 64, 3) uint8."""
    texture = np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    return np.stack([np.roll(texture, round(step_px * j), axis=1) for j in range(n_frames)])


def test_held_turns_agree_when_both_turn_the_simulators_way_at_least_half_as_far():
    simulator = {"TURN_LEFT": 4.0, "TURN_RIGHT": -4.0}
    left = np.stack([_panned(6, 4, seed) for seed in range(4)])
    right = np.stack([_panned(6, -4, seed) for seed in range(4)])
    perfect = held_turn_agreement(left, right, simulator)
    assert perfect["model_left_shift_px"] == pytest.approx(4.0, abs=0.25)
    assert perfect["model_right_shift_px"] == pytest.approx(-4.0, abs=0.25)
    assert perfect["held_turn_agreement"] == 1.0 and perfect["first_frames"] == 4
    assert held_turn_agreement(right, left, simulator)["held_turn_agreement"] == 0.0  # the wrong ways
    timid = np.stack([_panned(6, 1, seed) for seed in range(4)])  # the right way, a quarter as far
    assert held_turn_agreement(timid, right, simulator)["held_turn_agreement"] == 0.0
    still = np.repeat(left[:, :1], 6, axis=1)
    half = held_turn_agreement(np.concatenate([left[:2], still[2:]]), right, simulator)
    assert half["held_turn_agreement"] == 0.5
    assert held_turn_agreement(left, right, {"TURN_LEFT": None, "TURN_RIGHT": -4.0})["held_turn_agreement"] is None


def test_held_turn_actions_and_the_true_frames_turning_steps():
    actions = held_turn_actions(2, 5, VIZDOOM_NAMES, "TURN_RIGHT", frame_stride=2)
    assert actions.shape == (2, 5, 3) and actions.dtype == np.float32
    np.testing.assert_array_equal(actions[:, 0], 0)  # frame 0 is the start, as in every recorded episode
    np.testing.assert_array_equal(actions[:, 1:], np.broadcast_to([0, 2, 0], (2, 4, 3)))
    with pytest.raises(ValueError, match="no TURN_RIGHT column"):
        held_turn_actions(1, 3, ["TURN_LEFT", "MOVE_FORWARD"], "TURN_LEFT")

    # Left, left + forward, right, both (not counted), none, right: the scene moves +3 / -5 px per turn.
    rows = [[0, 0, 0], [1, 0, 0], [1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1], [0, 1, 0]]
    steps = [0, 3, 3, -5, 0, 0, -5]
    texture = _panned(1, 0)[0]
    frames = np.stack([np.roll(texture, offset, axis=1) for offset in np.cumsum(steps)])[None]
    shifts, counts = true_frames_turn_shifts(frames, np.array([rows], np.float32), VIZDOOM_NAMES)
    assert counts == {"TURN_LEFT": 2, "TURN_RIGHT": 2}
    assert shifts["TURN_LEFT"] == pytest.approx(3.0, abs=0.25) and shifts["TURN_RIGHT"] == pytest.approx(-5.0, abs=0.25)
    # Without seeds (or the simulator) the simulator's shift comes from these steps, and the result says so.
    fallback, source = simulator_turn_shifts(frames, np.array([rows], np.float32), VIZDOOM_NAMES, None, None)
    assert fallback == shifts and "not replayed" in source and "2 left, 2 right" in source

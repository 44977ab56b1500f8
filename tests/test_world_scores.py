"""World-model scores: colour locators and pusher rollout scores, and the digit classifier."""
import time

import numpy as np
import pytest

from videogpt_core.data.worlds import generate_digits_episode, generate_pusher_episode, split_seeds
from videogpt_core.data.worlds.pusher import make_scene, render_pusher_frames
from videogpt_core.evaluation.digit_classifier import (
    DigitClassifier, classify_clips, digit_accuracy, load_digit_classifier, save_digit_classifier, train_digit_classifier,
)
from videogpt_core.evaluation.pusher_world import locate_by_colour, locate_gripper, pusher_rollout_scores


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

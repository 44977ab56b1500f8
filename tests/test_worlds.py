"""The built-in worlds: determinism, splits, pusher physics, digits, and the make-dataset HDF5 round trip."""
import argparse
import dataclasses
import json

import h5py
import numpy as np
import pytest

from videogpt_core.data.make_dataset import add_commands, write_world_dataset
from videogpt_core.data.worlds import (
    TEST_SEED_OFFSET, WORLDS, generate_digits_episode, generate_pusher_episode, get_world, simulate_pusher,
    split_seeds,
)
from videogpt_core.data.worlds.pusher import (
    FRAME_SIZE, GRIPPER_RADIUS, MAX_SPEED, WALL_PX, make_scene, simulate_from_scene,
)


@pytest.mark.parametrize("world", sorted(WORLDS))
def test_same_seed_same_episode_and_other_seed_differs(world):
    generate = get_world(world).generate
    first, again, other = generate(7, 12), generate(7, 12), generate(8, 12)
    assert first.frames.dtype == np.uint8 and first.frames.shape == (12, 64, 64, 3)
    np.testing.assert_array_equal(first.frames, again.frames)
    np.testing.assert_array_equal(first.positions, again.positions)
    assert not np.array_equal(first.frames, other.frames)
    assert first.frames[1:].std() > 10  # something is drawn, not a blank canvas


def test_pusher_episode_layout_and_replay():
    episode = generate_pusher_episode(3, 20)
    n_objects = len(episode.object_colours)
    assert 1 <= n_objects <= 3
    assert episode.actions.shape == (20, 2) and episode.actions.dtype == np.float32
    assert episode.positions.shape == (20, 1 + n_objects, 2) and episode.positions.dtype == np.float32
    np.testing.assert_array_equal(episode.actions[0], 0)
    assert np.all(np.linalg.norm(episode.actions, axis=1) <= MAX_SPEED + 1e-5)
    assert np.abs(np.diff(episode.actions, axis=0)).mean() < 2.0  # smooth, not white noise
    # Replaying the recorded actions from the same seed reproduces the episode bit for bit ...
    replay = simulate_pusher(3, episode.actions)
    np.testing.assert_array_equal(replay.frames, episode.frames)
    np.testing.assert_array_equal(replay.positions, episode.positions)
    # ... and other actions from the same first frame give another rollout with the same start.
    other = simulate_pusher(3, -episode.actions)
    np.testing.assert_array_equal(other.frames[0], episode.frames[0])
    assert not np.array_equal(other.frames[-1], episode.frames[-1])


def test_random_episodes_push_objects_often():
    moved = [np.nanmax(np.linalg.norm(e.positions[-1, 1:] - e.positions[0, 1:], axis=-1)) > 2.0
             for e in (generate_pusher_episode(seed, 32) for seed in range(20))]
    assert np.mean(moved) >= 0.6


def _one_object_scene(gripper, obj, radius=5.0):
    scene = make_scene(0)
    return dataclasses.replace(
        scene, object_colours=np.array([[220, 45, 45]], np.uint8), object_radii=np.array([radius]),
        initial_positions=np.array([gripper, obj], dtype=np.float64),
    )


def test_gripper_follows_actions_in_free_space_and_speed_is_clipped():
    scene = _one_object_scene(gripper=(20.0, 20.0), obj=(50.0, 50.0))
    actions = np.zeros((6, 2), np.float32)
    actions[1:] = [[1.5, 0.5], [-1.0, 2.0], [0.0, -2.5], [2.0, 2.0], [10.0, 0.0]]
    episode = simulate_from_scene(scene, actions)
    np.testing.assert_allclose(np.diff(episode.positions[:5, 0], axis=0), actions[1:5], atol=1e-5)
    np.testing.assert_allclose(episode.positions[5, 0] - episode.positions[4, 0], [MAX_SPEED, 0], atol=1e-5)
    np.testing.assert_allclose(episode.actions[5], [MAX_SPEED, 0], atol=1e-5)  # records the clipped command
    np.testing.assert_array_equal(episode.positions[:, 1], episode.positions[:1, 1].repeat(6, axis=0))


def test_object_in_front_of_gripper_is_pushed_then_stops_at_the_wall():
    scene = _one_object_scene(gripper=(15.0, 32.0), obj=(30.0, 32.0), radius=5.0)
    actions = np.zeros((40, 2), np.float32)
    actions[1:, 0] = 2.0  # keep pushing right, far past the wall
    positions = simulate_from_scene(scene, actions).positions
    object_x, gripper_x = positions[:, 1, 0], positions[:, 0, 0]
    assert object_x[12] > 32.0  # contact happens around frame 5, then the object moves
    np.testing.assert_allclose(positions[:, 1, 1], 32.0, atol=1e-4)  # a head-on push stays on the line
    wall = FRAME_SIZE - WALL_PX - 5.0
    np.testing.assert_allclose(object_x[-1], wall, atol=1e-4)
    np.testing.assert_allclose(gripper_x[-1], wall - 5.0 - GRIPPER_RADIUS, atol=1e-3)  # blocked by the object


def test_nothing_leaves_the_table_or_overlaps():
    for seed in range(15):
        episode = generate_pusher_episode(seed, 64)
        radii = np.concatenate([[GRIPPER_RADIUS], make_scene(seed).object_radii])
        low = WALL_PX + radii - 1e-4
        assert np.all(episode.positions >= low[None, :, None])
        assert np.all(episode.positions <= FRAME_SIZE - low[None, :, None])
        gaps = np.linalg.norm(episode.positions[:, 1:] - episode.positions[:, :1], axis=-1) - radii[1:] - GRIPPER_RADIUS
        assert gaps.min() > -0.5


def test_digits_episode():
    episode = generate_digits_episode(5, 40)
    assert 0 <= episode.label <= 9 and episode.positions.shape == (40, 1, 2)
    assert episode.frames[:, :, :, 0].max() >= 180  # bright digit
    for frame, (x, y) in zip(episode.frames, episode.positions[:, 0]):
        ys, xs = np.nonzero(frame[..., 0] > 20)
        assert len(xs) > 20  # the digit is fully inside: never cut off or gone
        assert abs(xs.mean() + 0.5 - x) < 6 and abs(ys.mean() + 0.5 - y) < 6
    assert np.ptp(episode.positions[:, 0], axis=0).max() > 5  # it moves
    labels = {generate_digits_episode(seed, 1).label for seed in range(80)}
    assert labels == set(range(10))


def test_split_seeds_are_disjoint_and_checked():
    train, test = split_seeds("train", 1000, base_seed=5), split_seeds("test", 100, base_seed=5)
    assert train.dtype == np.int64 and train[0] == 5 and test[0] == TEST_SEED_OFFSET + 5
    assert not set(train.tolist()) & set(test.tolist())
    assert not set(split_seeds("train", 10, 0).tolist()) & set(split_seeds("test", 10, 0).tolist())
    with pytest.raises(ValueError, match="test seeds"):
        split_seeds("train", 10, base_seed=TEST_SEED_OFFSET - 5)
    with pytest.raises(ValueError, match="split"):
        split_seeds("val", 3)
    with pytest.raises(ValueError, match="unknown world"):
        get_world("bair")


def _parse(argv):
    parser = argparse.ArgumentParser(prog="videogpt")
    add_commands(parser.add_subparsers(dest="command"))
    return parser, parser.parse_args(argv)


def test_make_dataset_pusher_round_trip(tmp_path, capsys):
    _, args = _parse(["make-dataset", "pusher", "--out", str(tmp_path), "--n", "12", "--frames", "6",
                      "--seed", "3", "--quiet"])
    assert args.func(args) == 0
    assert "pusher.hdf5" in capsys.readouterr().out
    with h5py.File(tmp_path / "pusher.hdf5", "r") as file:
        assert file.attrs["world"] == "pusher" and file.attrs["action_dim"] == 2 and file.attrs["fps"] == 10
        assert "class_names" not in file.attrs and "train_labels" not in file
        for split, n in (("train", 12), ("test", 1)):  # --n-test defaults to max(1, N // 10)
            data, idx = file[f"{split}_data"], file[f"{split}_idx"][:]
            assert data.shape == (n * 6, 64, 64, 3) and data.dtype == np.uint8
            np.testing.assert_array_equal(idx, np.arange(n) * 6)
            assert idx.dtype == np.int64
            assert file[f"{split}_actions"].shape == (n * 6, 2) and file[f"{split}_actions"].dtype == np.float32
            assert file[f"{split}_positions"].shape == (n * 6, 4, 2)
            assert file[f"{split}_object_colours"].shape == (n, 3, 3)
            np.testing.assert_array_equal(file[f"{split}_actions"][idx], 0)
        seeds = file["train_seeds"][:]
        np.testing.assert_array_equal(seeds, 3 + np.arange(12))
        assert file["test_seeds"][0] == TEST_SEED_OFFSET + 3
        # Each stored video is exactly the episode its seed regenerates; positions are NaN-padded to 1 + 3.
        for video in (0, 7):
            episode = generate_pusher_episode(int(seeds[video]), 6)
            rows = slice(video * 6, video * 6 + 6)
            np.testing.assert_array_equal(file["train_data"][rows], episode.frames)
            np.testing.assert_array_equal(file["train_actions"][rows], episode.actions)
            positions = file["train_positions"][rows]
            n_things = episode.positions.shape[1]
            np.testing.assert_array_equal(positions[:, :n_things], episode.positions)
            assert np.isnan(positions[:, n_things:]).all()


def test_make_dataset_digits_round_trip(tmp_path):
    path = write_world_dataset("digits", tmp_path, n_train=5, n_test=3, n_frames=4, progress=False)
    with h5py.File(path, "r") as file:
        assert json.loads(file.attrs["class_names"]) == [str(d) for d in range(10)]
        assert file.attrs["action_dim"] == 0 and "train_actions" not in file
        assert file["test_data"].shape == (12, 64, 64, 3) and file["test_positions"].shape == (12, 1, 2)
        labels = file["train_labels"][:]
        assert labels.dtype == np.int64
        assert labels.tolist() == [generate_digits_episode(seed, 1).label for seed in range(5)]
    assert not list(tmp_path.glob("*.partial"))


def test_make_dataset_workers_write_the_same_file(tmp_path):
    serial = write_world_dataset("pusher", tmp_path / "serial", n_train=3, n_test=2, n_frames=4, progress=False)
    parallel = write_world_dataset("pusher", tmp_path / "parallel", n_train=3, n_test=2, n_frames=4,
                                   progress=False, workers=2)
    with h5py.File(serial, "r") as a, h5py.File(parallel, "r") as b:
        assert sorted(a.keys()) == sorted(b.keys())
        for key in a.keys():
            np.testing.assert_array_equal(a[key][:], b[key][:])
    with pytest.raises(ValueError, match="--workers"):
        write_world_dataset("pusher", tmp_path, n_train=1, workers=0)


def test_make_dataset_help_and_errors(tmp_path):
    parser, _ = _parse(["make-dataset", "digits", "--out", str(tmp_path), "--n", "1"])
    help_text = parser._subparsers._group_actions[0].choices["make-dataset"].format_help()
    for phrase in ("pusher", "digits", "--n-test", "--frames", "BAIR", "seed"):
        assert phrase in help_text
    with pytest.raises(SystemExit):
        _parse(["make-dataset", "nope", "--out", str(tmp_path), "--n", "1"])
    with pytest.raises(ValueError, match="--n"):
        write_world_dataset("digits", tmp_path, n_train=0)
    with pytest.raises(ValueError, match="--frames"):
        write_world_dataset("digits", tmp_path, n_train=2, n_frames=1)

"""The simulated worlds (vizdoom, fetchpush): determinism, byte-exact replay, the make-dataset file and its
readers (loader, encode-dataset), the missing-simulator error, the world scores on true rollouts, and the
held-turn, first-frame and long-rollout scores of `videogpt eval --what world` on a tiny vizdoom file.
Tiny episodes; each simulator starts once per test process (about a second)."""
import json
import sys

import h5py
import numpy as np
import pytest
import torch

from tiny_models import TINY_FRAME_ENCODER, tiny_prior, tiny_vqvae
from videogpt_core.data import open_dataset
from videogpt_core.data.codes import CodeDataset, encode_dataset
from videogpt_core.data.make_dataset import add_commands, write_world_dataset
from videogpt_core.data.worlds import TEST_SEED_OFFSET, get_world
from videogpt_core.data.worlds.simulators import close_simulators
from videogpt_core.evaluation.evaluate import evaluate
from videogpt_core.evaluation.rollout_scores import video_psnr
from videogpt_core.models.checkpoints import save_pipeline

pytest.importorskip("vizdoom", reason='the simulators are an optional extra: pip install -e ".[worlds]"')
pytest.importorskip("gymnasium_robotics", reason='the simulators are an optional extra: pip install -e ".[worlds]"')
pytest.importorskip("mujoco", reason='the simulators are an optional extra: pip install -e ".[worlds]"')

from videogpt_core.data.worlds.fetchpush import generate_fetchpush_episode, replay_fetchpush  # noqa: E402
from videogpt_core.data.worlds.vizdoom import SCENARIOS, generate_vizdoom_episode, replay_vizdoom  # noqa: E402
from videogpt_core.evaluation.fetchpush_world import fetchpush_rollout_scores, locate_fetchpush  # noqa: E402
from videogpt_core.evaluation.held_turns import (  # noqa: E402
    TURN_BUTTONS, held_turn_actions, held_turn_agreement, simulator_turn_shifts,
)
from videogpt_core.evaluation.vizdoom_world import turn_agreement  # noqa: E402

VIZDOOM_BUTTONS = list(SCENARIOS["health_gathering_supreme"].buttons)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_vizdoom_same_seed_same_bytes_and_replay(scenario):
    first, again = generate_vizdoom_episode(3, 12, scenario), generate_vizdoom_episode(3, 12, scenario)
    other = generate_vizdoom_episode(4, 12, scenario)
    n_buttons = len(SCENARIOS[scenario].buttons)
    assert first.frames.shape == (12, 64, 64, 3) and first.frames.dtype == np.uint8
    assert first.actions.shape == (12, n_buttons) and first.actions.dtype == np.float32
    np.testing.assert_array_equal(first.actions[0], 0)
    assert set(np.unique(first.actions)) <= {0.0, 1.0}  # multi-hot buttons
    np.testing.assert_array_equal(first.frames, again.frames)
    np.testing.assert_array_equal(first.actions, again.actions)
    assert not np.array_equal(first.frames, other.frames)
    # Replaying the recorded buttons from the seed gives the same bytes, also after another seed ran in between.
    replay = replay_vizdoom(3, first.actions, scenario)
    np.testing.assert_array_equal(replay.frames, first.frames)
    # Different buttons from the same start: same first frame, another rollout.
    turned = np.zeros_like(first.actions)
    turned[1:, 0] = 1  # keep turning left
    spun = replay_vizdoom(3, turned, scenario)
    np.testing.assert_array_equal(spun.frames[0], first.frames[0])
    assert not np.array_equal(spun.frames[-1], first.frames[-1])


def test_vizdoom_policy_moves_and_turns_and_frame_skip_matters():
    episode = generate_vizdoom_episode(5, 40)
    forward, turns = episode.actions[1:, 2].mean(), (episode.actions[1:, :2].sum(axis=1) > 0).mean()
    assert forward > 0.4 and 0.1 < turns < 0.9  # mostly walking, with turns: motion, not a still wall
    assert episode.travel > 8.0 * 39
    assert np.abs(np.diff(episode.frames.astype(np.int16), axis=0)).mean() > 5  # consecutive frames differ
    slower = generate_vizdoom_episode(5, 12, frame_skip=2)
    assert not np.array_equal(slower.frames, generate_vizdoom_episode(5, 12).frames)


def test_vizdoom_bad_inputs_say_what_to_do():
    with pytest.raises(ValueError, match="unknown ViZDoom scenario 'doom3'.*health_gathering_supreme"):
        generate_vizdoom_episode(0, 4, "doom3")
    with pytest.raises(ValueError, match="frame-skip must be a whole number"):
        generate_vizdoom_episode(0, 4, frame_skip=0)
    with pytest.raises(ValueError, match=r"shape \(T, 3\)"):
        replay_vizdoom(0, np.zeros((4, 4)))
    with pytest.raises(ValueError, match="multi-hot"):
        replay_vizdoom(0, np.full((4, 3), 0.5))
    with pytest.raises(ValueError, match="has no option scenario"):
        get_world("pusher", scenario="freedoom")


def test_fetchpush_same_seed_same_bytes_replay_and_positions():
    first, again, other = (generate_fetchpush_episode(seed, 16) for seed in (2, 2, 3))
    assert first.frames.shape == (16, 64, 64, 3) and first.actions.shape == (16, 4)
    assert first.positions.shape == (16, 2, 2) and first.positions.dtype == np.float32
    np.testing.assert_array_equal(first.actions[0], 0)
    assert np.abs(first.actions).max() <= 1.0
    np.testing.assert_array_equal(first.frames, again.frames)
    np.testing.assert_array_equal(first.positions, again.positions)
    assert not np.array_equal(first.frames, other.frames)
    replay = replay_fetchpush(2, first.actions)
    np.testing.assert_array_equal(replay.frames, first.frames)
    np.testing.assert_array_equal(replay.positions, first.positions)
    assert np.all((first.positions > 0) & (first.positions < 64))  # both things in view
    with pytest.raises(ValueError, match=r"shape \(T, 4\)"):
        replay_fetchpush(2, np.zeros((5, 2)))


def test_fetchpush_pusher_moves_the_block_in_most_episodes():
    moved = [np.linalg.norm(e.positions[-1, 1] - e.positions[0, 1]) > 2.0
             for e in (generate_fetchpush_episode(seed, 32) for seed in range(6))]
    assert np.mean(moved) >= 0.8


def test_fetchpush_locator_within_1_5_px_on_true_frames_and_poor_on_shuffled():
    episodes = [generate_fetchpush_episode(seed, 24) for seed in range(20, 24)]
    frames = np.stack([e.frames for e in episodes])
    positions = np.stack([e.positions for e in episodes])
    perfect = fetchpush_rollout_scores(frames, frames, positions)
    assert perfect["gripper_error_px"] < 1.5 and perfect["block_error_px"] < 1.5
    assert perfect["gripper_found"] == 1.0 and perfect["block_found"] > 0.8  # the arm may hide the block
    assert perfect["psnr"] == float("inf")
    shuffled = frames[:, np.random.default_rng(0).permutation(24)]
    poor = fetchpush_rollout_scores(shuffled, frames, positions)
    assert poor["gripper_error_px"] > 3 * perfect["gripper_error_px"] and poor["psnr"] < 25
    assert locate_fetchpush(np.zeros((64, 64, 3), np.uint8)).shape == (2, 2)
    assert np.isnan(locate_fetchpush(np.zeros((64, 64, 3), np.uint8))).all()  # nothing there: not found


# The paper's scenario: >= 95%. Freedoom's repeating wall textures sometimes alias a 10-pixel turn to the
# opposite shift (93% over seeds 0-15 on 2026-11-28).
@pytest.mark.parametrize("scenario, at_least", [("health_gathering_supreme", 0.95), ("freedoom", 0.9)])
def test_turn_agreement_high_on_true_frames_and_poor_on_shuffled(scenario, at_least):
    episodes = [generate_vizdoom_episode(seed, 32, scenario) for seed in range(3)]
    frames, actions = np.stack([e.frames for e in episodes]), np.stack([e.actions for e in episodes])
    names = list(SCENARIOS[scenario].buttons)
    true = turn_agreement(frames, actions, names)
    assert true["turn_steps"] >= 15 and true["turn_agreement"] >= at_least
    shuffled = turn_agreement(frames[:, np.random.default_rng(1).permutation(32)], actions, names)
    still = turn_agreement(np.repeat(frames[:, :1], 32, axis=1), actions, names)
    assert shuffled["turn_agreement"] < 0.75 and still["turn_agreement"] == 0.0


def test_make_dataset_files_are_read_by_the_loaders_and_encode_dataset(tmp_path, capsys):
    import argparse

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    args = parser.parse_args(["make-dataset", "vizdoom", "--out", str(tmp_path), "--n", "3", "--n-test", "2",
                              "--frames", "6", "--scenario", "freedoom", "--frame-skip", "2", "--quiet"])
    assert args.func(args) == 0
    assert "3 train + 2 test episodes of 6 frames" in capsys.readouterr().out
    vizdoom = tmp_path / "vizdoom.hdf5"
    fetchpush = write_world_dataset("fetchpush", tmp_path, n_train=2, n_test=2, n_frames=6, progress=False)
    with h5py.File(vizdoom, "r") as file:
        assert file.attrs["world"] == "vizdoom" and file.attrs["scenario"] == "freedoom"
        assert file.attrs["frame_skip"] == 2 and file.attrs["n_frames"] == 6
        assert json.loads(file.attrs["action_names"]) == ["TURN_LEFT", "TURN_RIGHT", "MOVE_FORWARD", "ATTACK"]
        assert file["train_actions"].shape == (18, 4) and file["train_data"].shape == (18, 64, 64, 3)
        assert list(file["test_seeds"][()]) == [TEST_SEED_OFFSET, TEST_SEED_OFFSET + 1]
        assert not set(file["train_seeds"][()]) & set(file["test_seeds"][()])
        assert "train_positions" not in file
        # The stored episode is the one the seed and the scenario give.
        expected = generate_vizdoom_episode(1, 6, "freedoom", frame_skip=2)
        np.testing.assert_array_equal(file["train_data"][6:12], expected.frames)
        np.testing.assert_array_equal(file["train_actions"][6:12], expected.actions)
    with h5py.File(fetchpush, "r") as file:
        assert json.loads(file.attrs["action_names"]) == ["dx", "dy", "dz", "gripper"]
        assert file.attrs["things"] == "gripper,block" and file["test_positions"].shape == (12, 2, 2)
        replay = replay_fetchpush(int(file["test_seeds"][1]), file["test_actions"][6:12])
        np.testing.assert_array_equal(file["test_data"][6:12], replay.frames)

    for path, action_dim in ((vizdoom, 4), (fetchpush, 4)):
        dataset = open_dataset(path, 4, 16, train=False)
        item = dataset[0]
        assert item["video"].shape == (3, 4, 16, 16) and item["actions"].shape == (4, action_dim)
        cache = encode_dataset(tiny_vqvae(0), dataset, tmp_path / f"codes-{path.stem}", batch_size=2,
                               progress=False)
        codes = CodeDataset(cache)
        assert len(codes) == 2 and codes.action_dim == action_dim
        assert torch.equal(codes[1]["actions"], dataset[1]["actions"])


def test_default_episode_length_is_the_scenarios(tmp_path):
    spec = get_world("vizdoom")
    assert spec.default_frames == 100 and spec.action_names == tuple(VIZDOOM_BUTTONS)
    assert get_world("vizdoom", scenario="freedoom").action_dim == 4
    assert get_world("fetchpush").default_frames == 32


def test_missing_simulator_names_the_install_command(monkeypatch, tmp_path):
    close_simulators()  # the engines earlier tests started: the next episode must start (import) one
    monkeypatch.setitem(sys.modules, "vizdoom", None)  # `import vizdoom` now raises ImportError
    with pytest.raises(ImportError, match=r"'vizdoom'.*pip install -e \"\.\[worlds\]\""):
        write_world_dataset("vizdoom", tmp_path, n_train=1, n_test=1, n_frames=2, progress=False)
    monkeypatch.setitem(sys.modules, "mujoco", None)
    with pytest.raises(ImportError, match=r"'fetchpush'.*pip install -e \"\.\[worlds\]\""):
        generate_fetchpush_episode(0, 2)


@pytest.mark.slow
@pytest.mark.parametrize("world", ["vizdoom", "fetchpush"])
def test_eval_world_scores_of_a_tiny_model(tmp_path, world):
    path = write_world_dataset(world, tmp_path / "data", n_train=2, n_test=3, n_frames=6, progress=False,
                               scenario="freedoom" if world == "vizdoom" else None)
    vqvae = tiny_vqvae(0)
    prior = tiny_prior(vqvae, "none", 1, action_dim=4, action_embed_dim=6, n_cond_frames=1, **TINY_FRAME_ENCODER)
    model = save_pipeline(tmp_path / "model", vqvae, prior)
    result = evaluate(model, path, what="world", world_samples=3, batch_size=2, seed=3)["world"]
    assert result["world"] == world and result["episodes"] == 3 and result["frames"] == 4
    for scores in (result, result["other_episode_actions_baseline"], result["copy_first_frame_baseline"]):
        assert np.isfinite(scores["psnr"]) and -1 <= scores["ssim"] <= 1
    assert result["action_sensitivity_psnr"] == pytest.approx(
        result["psnr"] - result["other_episode_actions_baseline"]["psnr"])
    if world == "vizdoom":
        assert result["true_frames"]["turn_steps"] == 0 or result["true_frames"]["turn_agreement"] >= 0.5
    else:
        assert result["true_frames"]["gripper_error_px"] < 1.5  # the locator on the simulator's own frames
    again = evaluate(model, path, what="world", world_samples=3, batch_size=2, seed=3)["world"]
    assert again == result


@pytest.fixture(scope="module")
def vizdoom_file(tmp_path_factory):
    """A vizdoom world file of the paper's scenario: 1 train and 3 test episodes of 6 frames."""
    return write_world_dataset("vizdoom", tmp_path_factory.mktemp("vizdoom"), n_train=1, n_test=3, n_frames=6,
                               progress=False)


def _test_split(path):
    with h5py.File(path, "r") as file:
        n_frames = int(file.attrs["n_frames"])
        truth = file["test_data"][()].reshape(-1, n_frames, 64, 64, 3)
        actions = file["test_actions"][()].reshape(len(truth), n_frames, -1)
        return truth, actions, file["test_seeds"][()], json.loads(file.attrs["action_names"])


def test_held_turns_of_the_simulator_itself_score_its_shift_and_full_agreement(vizdoom_file):
    truth, actions, seeds, names = _test_split(vizdoom_file)
    replay_options = {"scenario": "health_gathering_supreme", "frame_skip": 4}
    simulator, source = simulator_turn_shifts(truth, actions, names, seeds, replay_options)
    assert source == "replayed with the button held from 3 of 3 episodes' seeds"
    assert simulator["TURN_LEFT"] > 4 and simulator["TURN_RIGHT"] < -4  # turning left moves the scene right
    held = {button: np.stack([replay_vizdoom(int(seed), held_turn_actions(1, 6, names, button)[0]).frames
                              for seed in seeds]) for button in TURN_BUTTONS}
    np.testing.assert_array_equal(held["TURN_LEFT"][:, 0], truth[:, 0])  # from the stored first frames
    scores = held_turn_agreement(held["TURN_LEFT"], held["TURN_RIGHT"], simulator)
    assert scores["model_left_shift_px"] == pytest.approx(simulator["TURN_LEFT"])
    assert scores["model_right_shift_px"] == pytest.approx(simulator["TURN_RIGHT"])
    assert scores["held_turn_agreement"] == 1.0
    assert held_turn_agreement(held["TURN_RIGHT"], held["TURN_LEFT"], simulator)["held_turn_agreement"] == 0.0
    # Seeds that do not start at the stored first frames are not replayed: the true frames stand in.
    _, shuffled = simulator_turn_shifts(np.roll(truth, 1, axis=0), actions, names, seeds, replay_options)
    assert shuffled.startswith("the true frames' steps") and "no replay from the seeds" in shuffled


def test_held_turns_without_the_simulator_come_from_the_true_frames(vizdoom_file, monkeypatch):
    import videogpt_core.data.worlds.vizdoom as vizdoom_module
    from videogpt_core.data.worlds.optional_packages import import_world_package

    def replay_without_simulator(*args, **kwargs):
        import_world_package("vizdoom", "vizdoom")  # raises the ImportError that names the install command

    truth, actions, seeds, names = _test_split(vizdoom_file)
    monkeypatch.setitem(sys.modules, "vizdoom", None)  # `import vizdoom` now raises ImportError
    monkeypatch.setattr(vizdoom_module, "replay_vizdoom", replay_without_simulator)
    shifts, source = simulator_turn_shifts(truth, actions, names, seeds,
                                           {"scenario": "health_gathering_supreme", "frame_skip": 4})
    assert source.startswith("the true frames' steps that hold one turn button")
    assert "not replayed" in source and 'pip install -e ".[worlds]"' in source
    assert all(value is None or abs(value) > 1 for value in shifts.values())


def test_eval_reports_first_frame_held_turns_and_long_rollouts(vizdoom_file, tmp_path):
    vqvae = tiny_vqvae(0)
    prior = tiny_prior(vqvae, "none", 1, action_dim=3, action_embed_dim=6, n_cond_frames=1, **TINY_FRAME_ENCODER)
    model = save_pipeline(tmp_path / "model", vqvae, prior)
    result = evaluate(model, vizdoom_file, what="world", world_samples=3, batch_size=2, seed=3,
                      world_frames=6)["world"]
    first = result["first_frame"]
    assert first["gap_db"] == pytest.approx(first["codec_psnr"] - first["rollout_psnr"])
    assert 0 < first["rollout_psnr"] < 60 and 0 < first["codec_psnr"] < 60
    turns = result["held_turns"]
    assert turns["first_frames"] == 3 and turns["steps"] == 3
    assert turns["simulator"] == "replayed with the button held from 3 of 3 episodes' seeds"
    assert turns["simulator_left_shift_px"] > 4 and turns["simulator_right_shift_px"] < -4
    assert 0 <= turns["held_turn_agreement"] <= 1 and abs(turns["model_left_shift_px"]) < 32
    long = result["long_rollout"]
    assert long["episodes"] == 3 and long["frames"] == 6 and long["window_frames"] == 4
    assert long["scored_frames"] == [5, 6]
    truth, _, _, _ = _test_split(vizdoom_file)
    held = np.repeat(truth[:, :1], 2, axis=1)
    assert long["copy_first_frame_psnr"] == pytest.approx(video_psnr(held, truth[:, 4:6]))
    assert long["gain_over_copy_db"] == pytest.approx(long["psnr"] - long["copy_first_frame_psnr"])


def test_world_rollout_frames_score_rollouts_past_a_per_frame_window(vizdoom_file, tmp_path):
    """--world-rollout-frames: every world score (baselines and held turns too) on rollouts longer than the
    prior's window, which slides with its codes kept; refused for a codec whose codes need their context."""
    vqvae = tiny_vqvae(0, downsample=(1, 4, 4), causal=True, per_frame=True)
    prior = tiny_prior(vqvae, "none", 1, action_dim=3, action_embed_dim=6)
    model = save_pipeline(tmp_path / "per-frame", vqvae, prior)
    result = evaluate(model, vizdoom_file, what="world", world_samples=3, batch_size=2, seed=3,
                      world_rollout_frames=6)["world"]
    assert prior.config.sequence_length == 4 and result["frames"] == 6
    assert result["held_turns"]["steps"] == 5 and result["first_frame"]["gap_db"] == pytest.approx(0.0)
    truth, _, _, _ = _test_split(vizdoom_file)
    held = np.repeat(truth[:, :1], 6, axis=1)
    assert result["copy_first_frame_baseline"]["psnr"] == pytest.approx(video_psnr(held, truth))

    windowed = tiny_vqvae(0)
    cross = tiny_prior(windowed, "none", 1, action_dim=3, action_embed_dim=6, n_cond_frames=1, **TINY_FRAME_ENCODER)
    with pytest.raises(ValueError, match="needs a per-frame codec"):
        evaluate(save_pipeline(tmp_path / "windowed", windowed, cross), vizdoom_file, what="world",
                 world_samples=3, world_rollout_frames=6)

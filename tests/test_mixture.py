"""The mixture data set: deterministic per seed, disjoint train/test seeds and images, readable by the HDF5
loader, and never anything from gradio's held-out media_assets folder."""
import dataclasses
import importlib.util
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

pytest.importorskip("skimage", reason="the mixture's photographs need pip install -e '.[data]'")
pytest.importorskip("sklearn", reason="the mixture's photographs need pip install -e '.[data]'")
pytest.importorskip("matplotlib", reason="the mixture's photographs need pip install -e '.[data]'")

from videogpt_core.data.hdf5 import HDF5VideoDataset  # noqa: E402
from videogpt_core.data.mixture import CATALOGUE, MixtureSources, parse_mix, write_mixture_dataset  # noqa: E402
from videogpt_core.data.mixture.camera_video import camera_video  # noqa: E402
from videogpt_core.data.mixture.dead_leaves import dead_leaves_video  # noqa: E402
from videogpt_core.data.mixture.natural_images import image_path  # noqa: E402
from videogpt_core.data.mixture.sources import available_worlds  # noqa: E402
from videogpt_core.data.worlds import TEST_SEED_OFFSET, WORLDS  # noqa: E402


# The simulator worlds (seconds per episode) are left out where a test renders many episodes; the worlds'
# own determinism is tested in test_worlds.py.
FAST_MIX = "camera=0.5,dead_leaves=0.3,digits=0.2"


@pytest.fixture(scope="module")
def sources():
    return MixtureSources(FAST_MIX)


def test_every_source_is_deterministic_per_seed_and_differs_between_seeds(sources):
    for render in (camera_video, dead_leaves_video):
        first = render(np.random.default_rng(3), sources.images["train"], 6)
        again = render(np.random.default_rng(3), sources.images["train"], 6)
        other = render(np.random.default_rng(4), sources.images["train"], 6)
        frames = first[0] if isinstance(first, tuple) else first
        assert frames.shape == (6, 64, 64, 3) and frames.dtype == np.uint8
        np.testing.assert_array_equal(frames, again[0] if isinstance(again, tuple) else again)
        assert not np.array_equal(frames, other[0] if isinstance(other, tuple) else other)
        assert frames.std() > 5 and np.abs(np.diff(frames.astype(float), axis=0)).mean() > 0.2  # it moves


def test_episodes_are_the_same_from_a_fresh_source_set(sources):
    fresh = MixtureSources(FAST_MIX)
    seen = set()
    for seed in range(8):
        frames, source, _ = sources.episode(seed, "train", 5, 64)
        again, source_again, _ = fresh.episode(seed, "train", 5, 64)
        assert source == source_again
        np.testing.assert_array_equal(frames, again)
        seen.add(source)
    assert {"camera", "dead_leaves"} <= seen


def test_train_and_test_use_disjoint_images(sources):
    train = {image.name for image in sources.images["train"]}
    test = {image.name for image in sources.images["test"]}
    assert train and test and not train & test
    for seed in range(TEST_SEED_OFFSET, TEST_SEED_OFFSET + 16):
        _, source, used = sources.episode(seed, "test", 3, 64)
        assert set(used) <= test, (seed, source, used)


def test_no_image_comes_from_gradio():
    gradio_dir = None
    if importlib.util.find_spec("gradio") is not None:
        gradio_dir = Path(importlib.util.find_spec("gradio").origin).parent.resolve()
    for source in CATALOGUE:
        assert source.package != "gradio" and "media_assets" not in source.folder
        path = image_path(source).resolve()
        assert "media_assets" not in path.parts
        if gradio_dir is not None:
            assert gradio_dir not in path.parents


def test_written_file_is_deterministic_disjoint_and_loads(tmp_path):
    first = write_mixture_dataset(tmp_path / "a", n_train=6, n_test=3, n_frames=4, mix=FAST_MIX, progress=False)
    second = write_mixture_dataset(tmp_path / "b", n_train=6, n_test=3, n_frames=4, mix=FAST_MIX, progress=False)
    with h5py.File(first) as a, h5py.File(second) as b:
        assert sorted(a) == sorted(b)
        for key in a:
            np.testing.assert_array_equal(a[key][()], b[key][()])
        assert a["train_data"].shape == (24, 64, 64, 3) and a["test_data"].shape == (12, 64, 64, 3)
        assert not set(a["train_seeds"][()]) & set(a["test_seeds"][()])
        mix = json.loads(a.attrs["mix"])
        assert abs(sum(mix.values()) - 1) < 1e-9 and json.loads(a.attrs["sources"]) == list(mix)
        assert not set(json.loads(a.attrs["train_images"])) & set(json.loads(a.attrs["test_images"]))
        counts = json.loads(a.attrs["source_counts"])
        assert sum(counts["train"].values()) == 6 and sum(counts["test"].values()) == 3
    for train in (True, False):
        data = HDF5VideoDataset(first, sequence_length=4, train=train)
        item = data[0]
        assert item["video"].shape == (3, 4, 64, 64)
        assert float(item["video"].min()) >= -0.5 and float(item["video"].max()) <= 0.5
    with pytest.raises(ValueError, match="already exists"):
        write_mixture_dataset(tmp_path / "a", n_train=6, n_test=3, n_frames=4, mix=FAST_MIX, progress=False)


def test_a_world_whose_simulator_does_not_import_is_skipped_with_a_note(monkeypatch):
    def missing_simulator(seed, n_frames):
        raise ImportError("no module named 'made_up_simulator'")

    broken = dataclasses.replace(WORLDS["digits"], name="broken", generate=missing_simulator)
    monkeypatch.setitem(WORLDS, "broken", broken)
    found, notes = available_worlds(("digits", "broken"))
    assert found == ("digits",)
    assert len(notes) == 1 and "broken" in notes[0] and "made_up_simulator" in notes[0]
    sources = MixtureSources("camera=1,digits=1,broken=0")
    assert sources.names == ("camera", "digits") and sources.notes == notes
    with pytest.raises(ValueError, match="cannot run here"):
        MixtureSources("camera=1,broken=1")


def test_the_sources_order_does_not_depend_on_the_mix_text(monkeypatch):
    # The order decides which source a seed picks; the worlds named in --mix come as a set (whose order changes
    # from run to run with Python's string hashing), so they are put in the registry's order.
    monkeypatch.setattr("videogpt_core.data.mixture.sources._world_problem", lambda name: None)
    ordered = (("pusher", "digits"), ())
    assert available_worlds(("digits", "pusher")) == available_worlds({"pusher", "digits"}) == ordered
    assert MixtureSources("digits=1,pusher=1").names == MixtureSources("pusher=1,digits=1").names == ordered[0]


def test_mix_shares_and_bad_mixes():
    mix = parse_mix("camera=2,dead-leaves=1,worlds=1", ("pusher", "digits"))
    assert mix == pytest.approx({"camera": 0.5, "dead_leaves": 0.25, "pusher": 0.125, "digits": 0.125})
    assert parse_mix("camera=1,pusher=1", ("pusher", "digits")) == {"camera": 0.5, "pusher": 0.5}
    for text, message in [("camera", "NAME=SHARE"), ("sky=1", "unknown source"), ("camera=-1", ">= 0"),
                          ("camera=0", "share of 0")]:
        with pytest.raises(ValueError, match=message):
            parse_mix(text, ("pusher",))
    with pytest.raises(ValueError, match="cannot run here"):
        parse_mix("digits=1", ("pusher",))


def test_make_dataset_mixture_command(tmp_path, capsys):
    from videogpt_core.cli.main import main

    argv = ["make-dataset", "mixture", "--out", str(tmp_path), "--n", "3", "--n-test", "1", "--frames", "4",
            "--mix", FAST_MIX, "--quiet"]
    assert main(argv) == 0
    with h5py.File(tmp_path / "mixture.hdf5") as file:
        assert file["train_data"].shape == (12, 64, 64, 3) and len(file["test_idx"]) == 1
    assert main(argv) == 2 and "already exists" in capsys.readouterr().err
    assert main([*argv, "--overwrite", "--mix", "sky=1"]) == 2 and "unknown source" in capsys.readouterr().err

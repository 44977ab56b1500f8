"""The code cache: encode_dataset writes what CodeDataset reads back, with a test-double VQ-VAE."""
from __future__ import annotations

import argparse
import json
import pickle
from dataclasses import dataclass

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from videogpt_core.data.codes import CodeDataset, add_commands, codes_dtype, encode_dataset
from videogpt_core.data.hdf5 import HDF5VideoDataset
from videogpt_core.data.video_folder import VideoFolderDataset
from videogpt_core.io.video_io import write_avi


@dataclass
class FakeVQVAEConfig:
    n_codes: int = 16
    downsample: tuple[int, int, int] = (2, 4, 4)
    sequence_length: int = 4
    resolution: int = 16


class FakeVQVAEForTests(nn.Module):
    """TEST DOUBLE of the VQVAE API that encode_dataset uses: codes = bucketised average-pooled brightness."""

    def __init__(self, config: FakeVQVAEConfig):
        super().__init__()
        self.config = config
        self.unused = nn.Parameter(torch.zeros(()))  # so .to() / .train() behave like a real module
        self.encode_calls = 0

    @property
    def n_codes(self) -> int:
        return self.config.n_codes

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        t, h, w = self.config.downsample
        return (self.config.sequence_length // t, self.config.resolution // h, self.config.resolution // w)

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        assert not torch.is_grad_enabled() and not self.training, "encode_dataset must use no_grad + eval"
        self.encode_calls += 1
        pooled = F.avg_pool3d(video.mean(dim=1, keepdim=True), self.config.downsample)[:, 0]  # (B, t, h, w)
        return ((pooled + 0.5) * self.n_codes).long().clamp(0, self.n_codes - 1)


def make_hdf5(path, n_videos: int = 5, n_frames: int = 10, actions: bool = True) -> None:
    rng = np.random.default_rng(0)
    total = n_videos * n_frames
    with h5py.File(path, "w") as file:
        file["train_data"] = rng.integers(0, 256, (total, 16, 16, 3), dtype=np.uint8)
        file["train_idx"] = np.arange(n_videos, dtype=np.int64) * n_frames
        if actions:
            file["train_actions"] = rng.normal(size=(total, 3)).astype(np.float32)
            file["train_labels"] = np.arange(n_videos, dtype=np.int64) % 3
            file.attrs["class_names"] = json.dumps(["a", "b", "c"])


def test_codes_dtype_is_the_smallest_that_fits():
    assert codes_dtype(256) == np.uint8
    assert codes_dtype(257) == np.uint16
    assert codes_dtype(65536) == np.uint16
    assert codes_dtype(65537) == np.uint32


def test_round_trip_codes_frames_labels_actions(tmp_path):
    make_hdf5(tmp_path / "data.hdf5")
    dataset = HDF5VideoDataset(tmp_path / "data.hdf5", sequence_length=4, train=False, split="train")
    vqvae = FakeVQVAEForTests(FakeVQVAEConfig())
    vqvae.train()
    out = encode_dataset(vqvae, dataset, tmp_path / "cache", batch_size=2, n_cond_frames=2, progress=False)
    assert vqvae.training, "the caller's train/eval mode is restored"
    assert vqvae.encode_calls == 3  # 5 clips in batches of 2

    assert np.load(out / "codes.npy").dtype == np.uint8
    meta = json.loads((out / "meta.json").read_text())
    assert meta["n_codes"] == 16 and meta["latent_shape"] == [2, 4, 4] and meta["n_clips"] == 5
    assert (meta["sequence_length"], meta["resolution"], meta["action_dim"]) == (4, 16, 3)
    assert meta["class_names"] == ["a", "b", "c"] and meta["vqvae_config"]["downsample"] == [2, 4, 4]
    assert meta["source"].endswith("data.hdf5") and meta["split"] == "train"

    cache = CodeDataset(out)
    assert len(cache) == 5 and cache.n_codes == 16 and cache.latent_shape == (2, 4, 4)
    assert cache.class_names == ["a", "b", "c"] and cache.action_dim == 3 and cache.n_cond_frames == 2
    for index in range(5):
        source, cached = dataset[index], cache[index]
        assert set(cached) == {"codes", "frames", "label", "actions"}
        assert cached["codes"].dtype == torch.int64 and cached["codes"].shape == (2, 4, 4)
        expected = FakeVQVAEForTests(FakeVQVAEConfig()).eval()
        with torch.no_grad():
            assert torch.equal(cached["codes"], expected.encode(source["video"][None])[0])
        assert cached["frames"].shape == (3, 2, 16, 16)
        assert torch.equal(cached["frames"], source["video"][:, :2])  # uint8 storage is exact
        assert cached["label"].item() == source["label"].item() and cached["label"].dtype == torch.int64
        assert torch.equal(cached["actions"], source["actions"])


def test_incremental_writes_match_one_big_batch_and_pickle(tmp_path):
    make_hdf5(tmp_path / "data.hdf5", n_videos=7)
    dataset = HDF5VideoDataset(tmp_path / "data.hdf5", sequence_length=4, train=False, split="train")
    small = encode_dataset(FakeVQVAEForTests(FakeVQVAEConfig()), dataset, tmp_path / "small", batch_size=3,
                           progress=False)
    big = encode_dataset(FakeVQVAEForTests(FakeVQVAEConfig()), dataset, tmp_path / "big", batch_size=16,
                         progress=False)
    for name in ("codes", "frames", "labels", "actions"):
        np.testing.assert_array_equal(np.load(small / f"{name}.npy"), np.load(big / f"{name}.npy"))
    cache = CodeDataset(small)
    cache[0]  # maps the files in this process
    copy = pickle.loads(pickle.dumps(cache))
    assert copy._arrays is None and torch.equal(copy[6]["codes"], cache[6]["codes"])


def test_every_extra_array_of_the_items_is_cached_under_its_key(tmp_path):
    make_hdf5(tmp_path / "data.hdf5")
    with h5py.File(tmp_path / "data.hdf5", "a") as file:
        file["train_context"] = np.random.default_rng(1).normal(size=(5, 5))  # float64: cached as float32
        file["train_seeds"] = np.arange(5, dtype=np.int32) + 100
    dataset = HDF5VideoDataset(tmp_path / "data.hdf5", sequence_length=4, train=False, split="train")
    out = encode_dataset(FakeVQVAEForTests(FakeVQVAEConfig()), dataset, tmp_path / "cache", batch_size=2,
                         progress=False)
    assert np.load(out / "context.npy").dtype == np.float32 and np.load(out / "seeds.npy").dtype == np.int64
    meta = json.loads((out / "meta.json").read_text())
    assert meta["files"] == ["actions.npy", "codes.npy", "context.npy", "frames.npy", "labels.npy", "seeds.npy"]
    cache = CodeDataset(out)
    for index in range(5):
        source, cached = dataset[index], cache[index]
        assert set(cached) == {"codes", "frames", "label", "actions", "context", "seeds"}
        assert cached["context"].dtype == torch.float32 and torch.equal(cached["context"], source["context"])
        assert cached["seeds"].dtype == torch.int64 and cached["seeds"].item() == 100 + index
        assert cached["label"].shape == () and cached["label"].dtype == torch.int64
    with pytest.raises(ValueError, match=r"already holds a code cache \(meta.json, .*context.npy"):
        encode_dataset(FakeVQVAEForTests(FakeVQVAEConfig()), dataset, out, progress=False)


class ItemsForTests(torch.utils.data.Dataset):
    """TEST DOUBLE of a data set whose items hold one given entry beside the video."""

    def __init__(self, key, value):
        self.key, self.value = key, value

    def __len__(self):
        return 2

    def __getitem__(self, index):
        return {"video": torch.zeros(3, 4, 16, 16), self.key: self.value}


@pytest.mark.parametrize("key, value, message", [
    ("codes", torch.zeros(2), "'codes' would be stored as codes.npy"),
    ("mask", torch.zeros(2, dtype=torch.bool), "'mask' is torch.bool"),
    ("name", "clip", "'name' is list"),
])  # fmt: skip
def test_item_entries_the_cache_cannot_store_are_refused(tmp_path, key, value, message):
    with pytest.raises(ValueError, match=message):
        encode_dataset(FakeVQVAEForTests(FakeVQVAEConfig()), ItemsForTests(key, value), tmp_path / "cache",
                       progress=False)


def test_several_random_clips_per_video(tmp_path):
    make_hdf5(tmp_path / "data.hdf5", n_videos=3, n_frames=20, actions=False)
    dataset = HDF5VideoDataset(tmp_path / "data.hdf5", sequence_length=4, train=True)
    out = encode_dataset(FakeVQVAEForTests(FakeVQVAEConfig()), dataset, tmp_path / "cache", clips_per_video=3,
                         n_cond_frames=1, progress=False)
    cache = CodeDataset(out)
    assert len(cache) == 9 and cache.meta["clips_per_video"] == 3
    frames = np.load(out / "frames.npy")
    assert frames.shape == (9, 1, 16, 16, 3)
    # Rows 0, 3, 6 are clips of video 0 from three passes: random windows differ.
    assert len({frames[row].tobytes() for row in (0, 3, 6)}) > 1
    assert not (out / "labels.npy").exists() and not (out / "actions.npy").exists()
    assert set(cache[0]) == {"codes", "frames"}


def test_video_folder_without_frames_and_overwrite_rules(tmp_path):
    for index in range(3):
        write_avi(tmp_path / "videos" / f"{index}.avi", np.full((6, 20, 24, 3), 40 * index, np.uint8), fps=8)
    dataset = VideoFolderDataset(tmp_path / "videos", sequence_length=4, resolution=16, train=False)
    vqvae = FakeVQVAEForTests(FakeVQVAEConfig())
    out = encode_dataset(vqvae, dataset, tmp_path / "cache", n_cond_frames=0, progress=False)
    cache = CodeDataset(out)
    assert set(cache[1]) == {"codes"} and cache.class_names is None and cache.resolution == 16
    assert not (out / "frames.npy").exists()
    # Flat grey videos of increasing level: the fake codec's codes increase with them.
    assert cache[0]["codes"].float().mean() < cache[1]["codes"].float().mean() < cache[2]["codes"].float().mean()

    with pytest.raises(ValueError, match="already holds a code cache"):
        encode_dataset(vqvae, dataset, out, progress=False)
    encode_dataset(vqvae, dataset, out, n_cond_frames=1, progress=False, overwrite=True)
    assert CodeDataset(out).n_cond_frames == 1
    with pytest.raises(ValueError, match="n_cond_frames=5"):
        encode_dataset(vqvae, dataset, tmp_path / "other", n_cond_frames=5, progress=False)


def test_code_dataset_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        CodeDataset(tmp_path / "missing")
    with pytest.raises(ValueError, match="encode-dataset"):
        CodeDataset(tmp_path)
    np.save(tmp_path / "codes.npy", np.zeros((2, 1, 1, 1), np.uint8))
    with pytest.raises(ValueError, match="interrupted"):
        CodeDataset(tmp_path)


def test_encode_dataset_command_is_registered_with_help(capsys):
    parser = argparse.ArgumentParser(prog="videogpt")
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["encode-dataset", "--checkpoint", "ckpt", "--data", "d.hdf5", "--out", "codes"])
    assert (args.batch_size, args.cond_frames, args.clips_per_video, args.split) == (16, 1, 1, "train")
    assert args.sequence_length is None and callable(args.func)
    with pytest.raises(SystemExit):
        parser.parse_args(["encode-dataset", "--help"])
    help_text = capsys.readouterr().out
    for option in ("--checkpoint", "--data", "--out", "--sequence-length", "--resolution", "--batch-size",
                   "--cond-frames", "--clips-per-video", "--split", "--device"):
        assert option in help_text


def test_encode_dataset_command_with_a_real_tiny_vqvae(tmp_path):
    from videogpt_core import VQVAE, VQVAEConfig

    config = VQVAEConfig(embedding_dim=8, n_codes=32, n_hiddens=16, n_res_layers=1, downsample=(2, 2, 2),
                         sequence_length=4, resolution=8)
    VQVAE(config).eval().save_pretrained(tmp_path / "pipeline" / "vqvae")
    make_hdf5(tmp_path / "data.hdf5", n_videos=3, n_frames=6)
    parser = argparse.ArgumentParser(prog="videogpt")
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["encode-dataset", "--checkpoint", str(tmp_path / "pipeline"), "--data",
                              str(tmp_path / "data.hdf5"), "--out", str(tmp_path / "codes"), "--device", "cpu"])
    assert args.func(args) == 0
    cache = CodeDataset(tmp_path / "codes")
    assert len(cache) == 3 and cache.latent_shape == (2, 4, 4) and cache.n_codes == 32
    assert cache.resolution == 8 and cache[0]["frames"].shape == (3, 1, 8, 8)
    assert 0 <= cache[2]["codes"].min() and cache[2]["codes"].max() < 32

"""Real-data loaders on small files made here: video folders, UCF-101 trees, BAIR-layout HDF5, open_dataset."""
from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from videogpt_core.data import open_dataset
from videogpt_core.data.hdf5 import HDF5VideoDataset
from videogpt_core.data.transforms import from_model_video
from videogpt_core.data.ucf101 import UCF101Dataset
from videogpt_core.data.video_folder import VideoFolderDataset
from videogpt_core.io.video_io import read_video, video_metadata, write_avi, write_gif, write_mp4


def numbered_frames(n_frames: int, size: int = 16, base: int = 0) -> np.ndarray:
    """Frame k is a flat grey of level base + 8 k, so a decoded clip tells which frames it holds."""
    levels = (base + 8 * np.arange(n_frames)).clip(0, 255).astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (n_frames, size, size, 3)).copy()


def frame_numbers(video: torch.Tensor, base: int = 0) -> list[int]:
    """Inverse of numbered_frames for a model video (3, T, H, W)."""
    levels = from_model_video(video).astype(float).mean(axis=(1, 2, 3))
    return [int(round((level - base) / 8)) for level in levels]


def smooth_frames(n_frames: int, size: int = 32) -> np.ndarray:
    t = np.arange(n_frames)[:, None, None]
    y = np.arange(size)[None, :, None]
    x = np.arange(size)[None, None, :]
    channels = np.broadcast_arrays((x * 5 + t * 7) % 256, (y * 6 + t * 3) % 256, (x + y + t * 11) % 256)
    return np.stack(channels, -1).astype(np.uint8)


# ----------------------------------------------------------------------------- video folders


def test_video_folder_reads_mp4_avi_gif_without_labels(tmp_path):
    write_mp4(tmp_path / "a.mp4", numbered_frames(12), fps=8)
    write_avi(tmp_path / "b.avi", numbered_frames(12), fps=8)
    write_gif(tmp_path / "c.gif", numbered_frames(12), fps=8)
    dataset = VideoFolderDataset(tmp_path, sequence_length=4, resolution=8, frame_stride=3, train=False)
    assert len(dataset) == 3
    assert dataset.class_names is None and dataset.action_dim == 0
    assert (dataset.sequence_length, dataset.resolution) == (4, 8)
    for index in range(3):
        item = dataset[index]
        assert set(item) == {"video"}
        assert item["video"].shape == (3, 4, 8, 8) and item["video"].dtype == torch.float32
        assert -0.5 <= item["video"].min() and item["video"].max() <= 0.5
        # First window, every third frame: 0, 3, 6, 9 (flat frames survive every codec closely).
        assert frame_numbers(item["video"]) == [0, 3, 6, 9]
    assert dataset.skipped == []
    with pytest.raises(IndexError):
        dataset[3]


def test_video_folder_labels_from_subfolders_and_random_windows(tmp_path):
    write_avi(tmp_path / "dogs" / "d1.avi", numbered_frames(20), fps=8)
    write_avi(tmp_path / "cats" / "c1.avi", numbered_frames(20), fps=8)
    write_mp4(tmp_path / "cats" / "c2.mp4", numbered_frames(20), fps=8)
    (tmp_path / "cats" / "readme.txt").write_text("not a video, and not a video extension: ignored")
    dataset = VideoFolderDataset(tmp_path, sequence_length=5, resolution=16, train=True)
    assert dataset.class_names == ["cats", "dogs"]
    assert [dataset[i]["label"].item() for i in range(3)] == [0, 0, 1]
    assert dataset[0]["label"].dtype == torch.int64 and dataset[0]["label"].ndim == 0

    starts = {frame_numbers(dataset[2]["video"])[0] for _ in range(30)}
    assert len(starts) > 3 and min(starts) >= 0 and max(starts) <= 15
    torch.manual_seed(7)
    first = [frame_numbers(dataset[0]["video"]) for _ in range(3)]
    torch.manual_seed(7)
    assert [frame_numbers(dataset[0]["video"]) for _ in range(3)] == first  # seeds reproduce windows
    for numbers in first:
        assert numbers == list(range(numbers[0], numbers[0] + 5))

    fixed = VideoFolderDataset(tmp_path, 5, 16, train=False, eval_seed=3)
    assert frame_numbers(fixed[1]["video"]) == frame_numbers(fixed[1]["video"])


def test_bad_files_are_skipped_counted_and_never_stop_an_epoch(tmp_path):
    write_mp4(tmp_path / "good1.mp4", smooth_frames(30), fps=10)
    write_avi(tmp_path / "good2.avi", smooth_frames(30), fps=10)
    (tmp_path / "text.mp4").write_text("hello, I am a text file\n" * 50)
    (tmp_path / "empty.avi").write_bytes(b"")
    full = write_mp4(tmp_path / "full.mp4", smooth_frames(30), fps=10).read_bytes()
    (tmp_path / "full.mp4").unlink()
    (tmp_path / "truncated.mp4").write_bytes(full[: len(full) // 10])
    write_gif(tmp_path / "short.gif", smooth_frames(4), fps=10)

    dataset = VideoFolderDataset(tmp_path, sequence_length=8, resolution=16, train=True)
    assert len(dataset) == 6  # listing does not open files
    with pytest.warns(UserWarning) as caught:
        batches = list(DataLoader(dataset, batch_size=2, num_workers=0))
    messages = [str(warning.message) for warning in caught]
    assert sum(message.startswith("skipping video") for message in messages) == 4
    assert "4 of 6 videos" in messages[-1]  # the end-of-epoch summary
    assert sum(len(batch["video"]) for batch in batches) == 6  # the epoch completes at full length
    assert all(torch.isfinite(batch["video"]).all() for batch in batches)
    skipped = {Path(path).name: reason for path, reason in dataset.skipped}
    assert set(skipped) == {"text.mp4", "empty.avi", "truncated.mp4", "short.gif"}
    assert "empty file" in skipped["empty.avi"] and "not a readable video" in skipped["text.mp4"]
    assert "4 decodable frames" in skipped["short.gif"]
    assert "4 of 6 videos" in dataset.skip_summary()

    # A bad index deterministically gives the next good video; bad files are not retried.
    names = [path.name for path in dataset.paths]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no new warnings: already known
        replacement = dataset[names.index("text.mp4")]
    assert replacement["video"].shape == (3, 8, 16, 16)
    assert len(dataset.skipped) == 4


def test_header_frame_count_that_overstates_a_truncated_file_is_corrected(tmp_path):
    full = write_mp4(tmp_path / "full.mp4", smooth_frames(30), fps=10).read_bytes()
    (tmp_path / "full.mp4").unlink()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full[: int(len(full) * 0.8)])
    claimed, decodable = video_metadata(cut).n_frames, len(read_video(cut))
    assert claimed == 30 and 8 <= decodable < 30, "precondition: the header overstates the frame count"

    dataset = VideoFolderDataset(tmp_path, sequence_length=8, resolution=16, train=True)
    for _ in range(20):  # windows beyond the decodable end are re-drawn inside it, never skipped
        assert dataset[0]["video"].shape == (3, 8, 16, 16)
    assert dataset.skipped == []
    if decodable < 20:
        too_long = VideoFolderDataset(tmp_path, sequence_length=20, resolution=16, train=False)
        with pytest.warns(UserWarning, match="decodable frames"), pytest.raises(ValueError, match="none of the 1"):
            too_long[0]


def test_video_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        VideoFolderDataset(tmp_path / "nope", 4, 16)
    with pytest.raises(ValueError, match="no videos"):
        VideoFolderDataset(tmp_path, 4, 16)
    write_avi(tmp_path / "a.avi", numbered_frames(4), fps=8)
    with pytest.raises(ValueError, match="unsupported"):
        VideoFolderDataset(tmp_path, 4, 16, extensions=(".txt",))


def test_video_folder_pickles_for_workers(tmp_path):
    write_avi(tmp_path / "a.avi", numbered_frames(10), fps=8)
    dataset = VideoFolderDataset(tmp_path, 4, 16, train=True)
    dataset[0]
    copy = pickle.loads(pickle.dumps(dataset))
    assert copy[0]["video"].shape == (3, 4, 16, 16)


# ----------------------------------------------------------------------------- UCF-101


def make_ucf_tree(root: Path, with_lists: bool = True) -> None:
    classes = ["ApplyEyeMakeup", "Archery", "Basketball"]
    for class_number, name in enumerate(classes):
        for group in (1, 2):
            frames = numbered_frames(10, base=class_number * 80)
            write_avi(root / "UCF-101" / name / f"v_{name}_g{group:02d}_c01.avi", frames, fps=25)
    lists = root / "ucfTrainTestlist"
    lists.mkdir()
    # Deliberately not alphabetical: labels must come from classInd, not from sorting.
    (lists / "classInd.txt").write_text("1 Basketball\n2 ApplyEyeMakeup\n3 Archery\n")
    train = [f"{name}/v_{name}_g01_c01.avi {label}" for label, name in
             ((2, "ApplyEyeMakeup"), (3, "Archery"), (1, "Basketball"))]
    train.append("Archery/v_Archery_g09_c01.avi 3")  # listed but missing
    (lists / "trainlist01.txt").write_text("\n".join(train) + "\n")
    (lists / "testlist01.txt").write_text("".join(f"{name}/v_{name}_g02_c01.avi\n" for name in classes))
    if not with_lists:
        for path in lists.iterdir():
            path.unlink()
        lists.rmdir()


def test_ucf101_with_official_split_lists(tmp_path):
    make_ucf_tree(tmp_path)
    with pytest.warns(UserWarning, match="1 videos listed"):
        train = UCF101Dataset(tmp_path, sequence_length=4, resolution=8, train=True)
    assert train.class_names == ["Basketball", "ApplyEyeMakeup", "Archery"]
    assert len(train) == 3 and len(train.skipped) == 1 and "missing" in train.skipped[0][1]
    assert [train[i]["label"].item() for i in range(3)] == [1, 2, 0]
    test = UCF101Dataset(tmp_path, 4, 8, train=False)
    assert len(test) == 3 and all("_g02_" in path.name for path in test.paths)
    item = test[2]  # Basketball, class folder number 2 -> frames start at level 160
    assert item["label"].item() == 0
    assert frame_numbers(item["video"], base=160) == [0, 1, 2, 3]
    explicit = UCF101Dataset(tmp_path, 4, 8, split_file=tmp_path / "ucfTrainTestlist" / "testlist01.txt")
    assert explicit.paths == test.paths
    assert isinstance(open_dataset(tmp_path, 4, 8, train=False), UCF101Dataset)


def test_ucf101_without_lists_uses_all_videos_classes_sorted(tmp_path):
    make_ucf_tree(tmp_path, with_lists=False)
    dataset = UCF101Dataset(tmp_path, 4, 8, train=False)
    assert dataset.class_names == ["ApplyEyeMakeup", "Archery", "Basketball"]
    assert len(dataset) == 6
    assert [dataset[i]["label"].item() for i in range(6)] == [0, 0, 1, 1, 2, 2]
    with pytest.raises(FileNotFoundError, match="split list"):
        UCF101Dataset(tmp_path, 4, 8, split_file=tmp_path / "trainlist01.txt")


# ----------------------------------------------------------------------------- HDF5


def make_bair_file(path: Path, lengths=(12, 10, 5), extras: bool = True, split: str = "train") -> None:
    """Video v, frame j: channel 0 = j * 10, channel 1 = v * 50; actions[g] = (g, 1); positions[g] = g."""
    starts = np.cumsum((0, *lengths[:-1]))
    data = np.zeros((sum(lengths), 16, 16, 3), np.uint8)
    for video, (start, length) in enumerate(zip(starts, lengths)):
        data[start : start + length, ..., 0] = (10 * np.arange(length))[:, None, None]
        data[start : start + length, ..., 1] = 50 * video
    with h5py.File(path, "a") as file:
        file[f"{split}_data"] = data
        file[f"{split}_idx"] = starts.astype(np.int64)
        if extras:
            frames = np.arange(sum(lengths), dtype=np.float32)
            file[f"{split}_actions"] = np.stack([frames, np.ones_like(frames)], axis=1)
            file[f"{split}_positions"] = np.broadcast_to(frames[:, None, None], (len(frames), 2, 2)).copy()
            file[f"{split}_labels"] = np.arange(len(lengths), dtype=np.int64) % 2
            file.attrs["class_names"] = json.dumps(["even", "odd"])
            file.attrs["action_dim"] = 2
            file.attrs["world"] = "test-world"
            file.attrs["fps"] = 5.0


def test_hdf5_bair_layout_with_actions_labels_positions(tmp_path):
    path = tmp_path / "bair.hdf5"
    make_bair_file(path)
    with pytest.warns(UserWarning, match="left out 1 of 3 videos"):
        dataset = HDF5VideoDataset(path, sequence_length=3, train=False, frame_stride=3, split="train")  # 7 frames
    assert len(dataset) == 2 and dataset.class_names == ["even", "odd"]
    assert (dataset.action_dim, dataset.world, dataset.fps, dataset.resolution) == (2, "test-world", 5.0, 16)

    item = dataset[1]  # video 1 starts at global frame 12; first window with stride 3: frames 0, 3, 6
    assert set(item) == {"video", "label", "actions", "positions"}
    frames = from_model_video(item["video"])
    assert frames.shape == (3, 16, 16, 3)
    assert frames[:, 0, 0, 0].tolist() == [0, 30, 60] and frames[0, 0, 0, 1] == 50
    assert item["label"].item() == 1 and item["label"].dtype == torch.int64
    assert item["positions"].shape == (3, 2, 2) and item["positions"][:, 0, 0].tolist() == [12, 15, 18]
    # Each kept frame's action sums the steps into it since the previous kept frame (only 12 for the
    # first: the video starts there); column 1 counts the steps.
    assert item["actions"].dtype == torch.float32
    assert item["actions"].tolist() == [[12, 1], [13 + 14 + 15, 3], [16 + 17 + 18, 3]]
    later = HDF5VideoDataset(path, sequence_length=2, train=False, frame_stride=3, eval_seed=0, split="train")
    for index in range(len(later)):  # a window inside the video sums 3 steps for its first frame too
        item = later[index]
        first_frame = round(item["positions"][0, 0, 0].item())
        start_of_video = (0, 12, 22)[index]
        expected = 3 if first_frame - start_of_video >= 2 else first_frame - start_of_video + 1
        assert item["actions"][0, 1].item() == expected

    train = HDF5VideoDataset(path, sequence_length=4, resolution=8, train=True)
    seen = set()
    for _ in range(100):
        item = train[0]
        assert item["video"].shape == (3, 4, 8, 8)
        first_step = item["actions"][0, 0].item()
        assert item["actions"][:, 0].tolist() == [first_step + k for k in range(4)]
        seen.add(first_step)
    assert seen == set(range(0, 12 - 4 + 1))


def test_hdf5_passes_any_per_frame_or_per_video_array_to_the_items(tmp_path):
    path = tmp_path / "extras.hdf5"
    make_bair_file(path)  # 27 frames: videos of 12, 10, 5
    with h5py.File(path, "a") as file:
        file["train_context"] = np.arange(15, dtype=np.float64).reshape(3, 5)
        file["train_depth"] = np.stack([np.arange(27), -np.arange(27)], axis=1).astype(np.float16)
        file["train_seeds"] = np.array([7, 8, 9], np.int32)
    make_bair_file(path, lengths=(4, 4), extras=False, split="train_small")  # another split's arrays
    dataset = HDF5VideoDataset(path, sequence_length=3, train=False, frame_stride=2, split="train")
    assert dataset.extra_arrays == {"actions": "per_frame", "context": "per_video", "depth": "per_frame",
                                    "labels": "per_video", "positions": "per_frame", "seeds": "per_video"}
    assert "context" in repr(dataset) and dataset.has_actions and dataset.has_labels and dataset.has_positions
    item = dataset[1]  # video 1 starts at global frame 12; stride 2 keeps frames 12, 14, 16
    assert set(item) == {"video", "label", "actions", "positions", "context", "depth", "seeds"}
    assert item["context"].dtype == torch.float32 and item["context"].tolist() == [5, 6, 7, 8, 9]
    assert item["depth"].dtype == torch.float32 and item["depth"].tolist() == [[12, -12], [14, -14], [16, -16]]
    assert item["seeds"].dtype == torch.int64 and item["seeds"].shape == () and item["seeds"].item() == 8
    assert item["actions"].tolist() == [[12, 1], [13 + 14, 2], [15 + 16, 2]]  # increments are summed
    assert item["label"].dtype == torch.int64 and item["label"].item() == 1
    batch = next(iter(DataLoader(dataset, batch_size=3)))
    assert batch["context"].shape == (3, 5) and batch["depth"].shape == (3, 3, 2) and batch["seeds"].shape == (3,)


@pytest.mark.parametrize("name, array, message", [
    ("bad", np.zeros((7, 2), np.float32), r"'train_bad' has shape \(7, 2\).*frame \(first dimension 27.*video \(3\)"),
    ("mask", np.zeros(3, bool), r"'train_mask' is bool.*integers or floats"),
    ("labels", np.zeros(27, np.int64), r"'train_labels' has shape \(27,\); expected one row per video \(3\)"),
    ("actions", np.zeros((27, 2, 1)), r"'train_actions' has shape \(27, 2, 1\); expected 2 dims"),
    ("label", np.zeros(3, np.int64), r"\['label'\] twice"),
])  # fmt: skip
def test_hdf5_refuses_an_extra_array_it_cannot_place(tmp_path, name, array, message):
    path = tmp_path / "bad.hdf5"
    make_bair_file(path, extras=name == "label")
    with h5py.File(path, "a") as file:
        file[f"train_{name}"] = array
    with pytest.raises(ValueError, match=message):
        HDF5VideoDataset(path, sequence_length=3, train=False, split="train")


def test_hdf5_without_extras_and_test_split(tmp_path):
    path = tmp_path / "plain.h5"
    make_bair_file(path, lengths=(8, 8), extras=False, split="test")
    dataset = HDF5VideoDataset(path, sequence_length=8, train=False)
    assert dataset.split == "test" and len(dataset) == 2
    assert set(dataset[0]) == {"video"} and dataset.class_names is None and dataset.action_dim == 0
    assert isinstance(open_dataset(path, 8, None, train=False), HDF5VideoDataset)
    with pytest.raises(ValueError, match="'train_data'.*expected the VideoGPT/BAIR HDF5 layout"):
        HDF5VideoDataset(path, sequence_length=8, train=True)


def test_hdf5_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.hdf5"):
        HDF5VideoDataset(tmp_path / "missing.hdf5", 4)
    (tmp_path / "fake.hdf5").write_text("not hdf5")
    with pytest.raises(ValueError, match="not an HDF5 file"):
        HDF5VideoDataset(tmp_path / "fake.hdf5", 4)
    path = tmp_path / "no_idx.hdf5"
    with h5py.File(path, "w") as file:
        file["train_data"] = np.zeros((4, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="train_idx"):
        HDF5VideoDataset(path, 4)
    with pytest.raises(ValueError, match="no video has the 9 frames"):
        make_bair_file(tmp_path / "short.hdf5", lengths=(5,), extras=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            HDF5VideoDataset(tmp_path / "short.hdf5", 9)


def test_hdf5_opens_lazily_per_process_and_pickles(tmp_path):
    path = tmp_path / "bair.hdf5"
    make_bair_file(path, lengths=(6, 6))
    dataset = HDF5VideoDataset(path, sequence_length=4, train=False, split="train")
    assert dataset._file is None  # nothing held open after __init__
    before = dataset[1]["video"]
    copy = pickle.loads(pickle.dumps(dataset))
    assert copy._file is None
    assert torch.equal(copy[1]["video"], before)


@pytest.mark.slow
def test_dataloader_workers_read_hdf5_and_video_folders(tmp_path):
    path = tmp_path / "bair.hdf5"
    make_bair_file(path, lengths=(6, 6, 6, 6))
    for dataset in (HDF5VideoDataset(path, sequence_length=4, train=True),
                    VideoFolderDataset(_folder_of_videos(tmp_path / "videos"), 4, 16, train=True)):
        batches = list(DataLoader(dataset, batch_size=2, num_workers=2))
        assert sum(len(batch["video"]) for batch in batches) == len(dataset)


def _folder_of_videos(root: Path) -> Path:
    for index in range(4):
        write_avi(root / f"{index}.avi", numbered_frames(8), fps=8)
    return root


# ----------------------------------------------------------------------------- open_dataset


def test_open_dataset_picks_the_class(tmp_path):
    videos = tmp_path / "videos"
    write_avi(videos / "a.avi", numbered_frames(6), fps=8)
    assert isinstance(open_dataset(videos, 4, 16), VideoFolderDataset)
    assert not isinstance(open_dataset(videos, 4, 16), UCF101Dataset)
    with pytest.raises(ValueError, match="single file"):
        open_dataset(videos / "a.avi", 4, 16)
    with pytest.raises(FileNotFoundError):
        open_dataset(tmp_path / "nothing", 4, 16)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "meta.json").write_text("{}")
    np.save(cache / "codes.npy", np.zeros((1, 1, 1, 1), np.uint8))
    with pytest.raises(ValueError, match="CodeDataset"):
        open_dataset(cache, 4, 16)

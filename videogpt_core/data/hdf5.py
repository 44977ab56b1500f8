"""Clips from one HDF5 file in the reference VideoGPT (BAIR) layout, with any per-frame or per-video arrays.

Layout, per split ("train" / "test"):
  {split}_data       uint8 (total_frames, H, W, 3)  all videos' frames, back to back
  {split}_idx        int64 (n_videos,)              first frame of each video (video i: idx[i] .. idx[i+1])
  {split}_<name>     any other array, integer or floating, with one row per frame (total_frames, ...)
                     or one per video (n_videos, ...); items carry the clip's rows under "<name>"
  file attributes    class_names (JSON list), action_dim, world, fps (all optional)
Names with a fixed meaning:
  {split}_actions    float32 (total_frames, A)      actions[j] moved the world from frame j-1 to j
  {split}_labels     int64 (n_videos,)              class per video (item key "label")
  {split}_positions  float32 (total_frames, K, 2)   object positions per frame
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from videogpt_core.data.transforms import ClipWindows, resize_center_crop, to_model_video

LAYOUT_HELP = (
    "expected the VideoGPT/BAIR HDF5 layout: '{split}_data' uint8 (total_frames, H, W, 3) and "
    "'{split}_idx' int64 start frame per video, optionally any other '{split}_<name>' integer or float "
    "array with one row per frame or one per video, such as '{split}_actions' (total_frames, A), "
    "'{split}_labels' (n_videos,), '{split}_positions' (total_frames, K, 2)"
)
LAYOUT_ARRAYS = ("data", "idx")
# Rows that are increments (actions[j] moved frame j-1 to j): with frame_stride > 1 a clip frame
# needs the sum since the previous kept frame, or the steps in between would be lost.
SUMMED_PER_FRAME = {"actions"}
# Item keys that differ from the array name (every data set names a clip's class "label").
ITEM_KEYS = {"labels": "label"}
# Arrays other code reads with a fixed meaning: where their rows belong and their dims (None: any).
KNOWN_ARRAYS = {"actions": ("per_frame", 2), "positions": ("per_frame", 3), "labels": ("per_video", None)}


class HDF5VideoDataset(Dataset):
    """Random (train) or fixed (eval) clips of the videos in one split of an HDF5 file.

    `train` picks the split ("train" or "test") unless `split` names one, and random vs fixed
    windows. `resolution=None` keeps the stored size (reported as `resolution` when square).
    Items: "video" float (3, T, H, W) in [-0.5, 0.5], and one entry per other array of the split
    (`extra_arrays`: name -> "per_frame" / "per_video"): a per-frame array gives the clip frames'
    rows (T, ...), a per-video one the video's row; integer arrays as int64, floating ones as
    float32. "labels" comes as "label" (int64 scalar). With frame_stride > 1 a clip frame's
    action is the sum of the per-frame actions since the previous clip frame (displacements
    add up; one-hot actions become counts; SUMMED_PER_FRAME), other per-frame arrays are
    subsampled like the frames. Videos shorter than one clip are left out with a warning. The
    file is opened lazily, once per process, so the data set can go to DataLoader workers.
    """

    def __init__(
        self,
        path: str | Path,
        sequence_length: int,
        resolution: int | None = None,
        train: bool = True,
        frame_stride: int = 1,
        split: str | None = None,
        eval_seed: int | None = None,
    ):
        import h5py

        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"HDF5 data set not found: {self.path}")
        if not self.path.is_file() or not h5py.is_hdf5(self.path):
            raise ValueError(f"{self.path} is not an HDF5 file; {LAYOUT_HELP}")
        self.split = split or ("train" if train else "test")
        self.sequence_length = int(sequence_length)
        self.resolution = None if resolution is None else int(resolution)
        self.frame_stride = int(frame_stride)
        self.train = bool(train)
        self.windows = ClipWindows(self.sequence_length, self.frame_stride, self.train, eval_seed)
        self._file = None
        self._file_pid: int | None = None
        self.has_actions = self.has_labels = self.has_positions = False
        self.extra_arrays: dict[str, str] = {}
        self.video_ids = np.zeros(0, np.int64)

        with h5py.File(self.path, "r") as file:
            self._read_layout(file)

    def _key(self, name: str) -> str:
        return f"{self.split}_{name}"

    def _read_layout(self, file) -> None:
        """Validate the layout and keep the small per-video index in memory."""
        for name in ("data", "idx"):
            if self._key(name) not in file:
                raise ValueError(
                    f"{self.path} has no '{self._key(name)}' (keys: {sorted(file.keys())}); "
                    + LAYOUT_HELP.replace("{split}", self.split)
                )
        data = file[self._key("data")]
        if data.ndim != 4 or data.shape[-1] != 3 or data.dtype != np.uint8:
            raise ValueError(
                f"{self.path}: '{self._key('data')}' is {data.dtype} {data.shape}; "
                "expected uint8 (total_frames, H, W, 3)"
            )
        total_frames = data.shape[0]
        self.frame_size = tuple(data.shape[1:3])
        if self.resolution is None and self.frame_size[0] == self.frame_size[1]:
            self.resolution = self.frame_size[0]  # stored square frames are used as they are
        starts = np.asarray(file[self._key("idx")][()], dtype=np.int64).reshape(-1)
        if len(starts) == 0 or np.any(np.diff(starts) < 0) or starts[0] < 0 or starts[-1] > total_frames:
            raise ValueError(
                f"{self.path}: '{self._key('idx')}' must hold increasing start frames within 0..{total_frames}"
            )
        ends = np.append(starts[1:], total_frames)
        labels = self._read_extras(file, total_frames, len(starts))
        self._read_attributes(file.attrs, labels)
        self._keep_long_videos(starts, ends)
        self.labels = labels

    def _read_extras(self, file, total_frames: int, n_videos: int) -> np.ndarray | None:
        """Every other array of the split into `extra_arrays` (checked); the per-video labels, or None."""
        import h5py

        prefix = self._key("")
        # A split whose name starts with this one's ("train_small" beside "train") keeps its own arrays.
        longer_splits = [key[: -len("data")] for key in file if key.startswith(prefix) and key.endswith("_data")
                         and key[: -len("data")] + "idx" in file and key != self._key("data")]  # fmt: skip
        self.extra_arrays = {}
        for key in sorted(file):
            name = key[len(prefix):]
            if key.startswith(prefix) and name not in LAYOUT_ARRAYS and isinstance(file[key], h5py.Dataset) \
                    and not any(key.startswith(split) for split in longer_splits):
                self.extra_arrays[name] = self._extra_kind(file[key], name, total_frames, n_videos)
        item_keys = [ITEM_KEYS.get(name, name) for name in self.extra_arrays]
        clashes = sorted({key for key in item_keys if key == "video" or item_keys.count(key) > 1})
        if clashes:
            raise ValueError(
                f"{self.path}: the '{prefix}*' arrays would give items the key(s) {clashes} twice "
                "(\"video\" holds the frames; \"labels\" gives \"label\"); rename one of them"
            )
        self.has_actions, self.has_labels, self.has_positions = (
            name in self.extra_arrays for name in ("actions", "labels", "positions"))  # fmt: skip
        self.action_dim = file[self._key("actions")].shape[1] if self.has_actions else 0
        labels = None
        if self.has_labels:
            labels = np.asarray(file[self._key("labels")][()], dtype=np.int64).reshape(-1)
            if len(labels) != n_videos:
                raise ValueError(
                    f"{self.path}: '{self._key('labels')}' has {len(labels)} entries for {n_videos} videos"
                )
        return labels

    def _extra_kind(self, dataset, name: str, total_frames: int, n_videos: int) -> str:
        """Where the array's rows belong ("per_frame" / "per_video"), from its first dimension and dtype."""
        key = self._key(name)
        if not (np.issubdtype(dataset.dtype, np.integer) or np.issubdtype(dataset.dtype, np.floating)):
            raise ValueError(
                f"{self.path}: '{key}' is {dataset.dtype}; every '{self._key('<name>')}' array besides data and "
                "idx goes into the items, so it must hold integers or floats (store text as a file attribute, "
                "booleans as uint8, or rename it without the split prefix)"
            )
        rows = {"per_frame": total_frames, "per_video": n_videos}
        expected, ndim = KNOWN_ARRAYS.get(name, (None, None))
        # Known names decide where their rows belong (a split of one-frame videos has as many of each).
        kinds = [kind for kind, count in rows.items()
                 if dataset.ndim and dataset.shape[0] == count and expected in (None, kind)]  # fmt: skip
        if kinds and (ndim is None or dataset.ndim == ndim):
            return kinds[0]
        if expected is not None:
            raise ValueError(
                f"{self.path}: '{key}' has shape {dataset.shape}; expected {f'{ndim} dims with ' if ndim else ''}"
                f"one row per {expected.removeprefix('per_')} ({rows[expected]})"
            )
        raise ValueError(
            f"{self.path}: '{key}' has shape {dataset.shape}; an extra array needs one row per frame (first "
            f"dimension {total_frames}, the split's total frames) or one per video ({n_videos})"
        )

    def _read_attributes(self, attrs, labels: np.ndarray | None) -> None:
        """Class names, action_dim (checked against the actions), world and fps from the file's attributes."""
        self.class_names = _class_names(attrs.get("class_names"), labels)
        if labels is not None and len(labels) and (labels.min() < 0 or labels.max() >= len(self.class_names)):
            raise ValueError(
                f"{self.path}: '{self._key('labels')}' holds labels {labels.min()}..{labels.max()} "
                f"but there are {len(self.class_names)} class_names"
            )
        declared = int(attrs.get("action_dim", self.action_dim))
        if declared != self.action_dim:
            raise ValueError(
                f"{self.path}: attribute action_dim={declared} but '{self._key('actions')}' "
                + (f"has {self.action_dim} columns" if self.has_actions else "is missing")
            )
        self.world = _text(attrs.get("world"))
        self.fps = float(attrs["fps"]) if "fps" in attrs else None

    def _keep_long_videos(self, starts: np.ndarray, ends: np.ndarray) -> None:
        """The videos long enough for a clip (the others are left out with a warning)."""
        long_enough = (ends - starts) >= self.windows.span
        self.n_short_videos = int((~long_enough).sum())
        if self.n_short_videos:
            warnings.warn(
                f"{self.path} [{self.split}]: left out {self.n_short_videos} of {len(starts)} videos shorter "
                f"than a clip ({self.windows.span} frames)",
                stacklevel=4,  # the code that opened the data set
            )
        if not long_enough.any():
            raise ValueError(
                f"{self.path} [{self.split}]: no video has the {self.windows.span} frames a clip of "
                f"{self.sequence_length} frames with stride {self.frame_stride} needs"
            )
        self.video_ids = np.flatnonzero(long_enough)
        self.starts, self.ends = starts, ends

    @property
    def file(self):
        """The open h5py file of this process (opened on first use; h5py handles do not survive fork)."""
        if self._file is None or self._file_pid != os.getpid():
            import h5py

            self._file = h5py.File(self.path, "r")
            self._file_pid = os.getpid()
        return self._file

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_file"], state["_file_pid"] = None, None
        return state

    def __len__(self) -> int:
        return len(self.video_ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} videos")
        video = int(self.video_ids[index])
        first, end = int(self.starts[video]), int(self.ends[video])
        start = first + self.windows.start(end - first, video)
        stop = start + self.windows.span
        stride = self.frame_stride

        frames = self.file[self._key("data")][start:stop:stride]
        if self.resolution is not None:
            frames = resize_center_crop(frames, self.resolution)
        item = {"video": to_model_video(frames)}
        for name, kind in self.extra_arrays.items():
            dataset = None if name == "labels" else self.file[self._key(name)]
            if dataset is None:  # the labels are in memory, checked against class_names
                value = torch.tensor(self.labels[video], dtype=torch.int64)
            elif kind == "per_video":
                value = torch.from_numpy(np.asarray(dataset[video], dtype=_item_dtype(dataset.dtype)))
            elif name in SUMMED_PER_FRAME:
                # Each kept frame gets the steps into it since the previous kept frame (within this video);
                # sums of steps stay float32 whatever the stored dtype, as the action models read them.
                low = max(first, start - stride + 1)
                steps = np.asarray(dataset[low:stop], dtype=np.float32)
                value = torch.from_numpy(_sum_between_kept(steps, start - low, stride))
            else:
                value = torch.from_numpy(np.asarray(dataset[start:stop:stride], dtype=_item_dtype(dataset.dtype)))
            item[ITEM_KEYS.get(name, name)] = value
        return item

    def __repr__(self) -> str:
        extras = list(self.extra_arrays)
        return (
            f"HDF5VideoDataset({self.path} [{self.split}], {len(self)} videos, {self.sequence_length} frames, "
            f"{'native size' if self.resolution is None else f'{self.resolution}px'}"
            f"{', ' + ', '.join(extras) if extras else ''})"
        )


def _sum_between_kept(steps: np.ndarray, first_kept: int, stride: int) -> np.ndarray:
    """Per-frame rows -> one row per kept frame: the sum of the rows since the previous kept frame.

    steps[first_kept + k * stride] is kept frame k's own row; its sum starts stride - 1 rows
    earlier (fewer for k = 0 when the video starts inside that range).
    """
    if stride == 1:
        return np.ascontiguousarray(steps[first_kept:])
    totals = np.concatenate([np.zeros((1, steps.shape[1]), steps.dtype), np.cumsum(steps, axis=0, dtype=np.float64)])
    kept = np.arange(first_kept, len(steps), stride)
    lower = np.maximum(kept - stride + 1, 0)
    return (totals[kept + 1] - totals[lower]).astype(np.float32)


def _item_dtype(dtype: np.dtype) -> type:
    """int64 for integer arrays, float32 for floating ones (what collate and the models expect)."""
    return np.int64 if np.issubdtype(dtype, np.integer) else np.float32


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


def _class_names(attribute, labels: np.ndarray | None) -> list[str] | None:
    """class_names from the file attribute (a JSON list or an array of strings), else numbered from labels."""
    if attribute is not None:
        if isinstance(attribute, (str, bytes)):
            names = json.loads(_text(attribute))
        else:
            names = [_text(name) for name in np.asarray(attribute).reshape(-1)]
        return [str(name) for name in names]
    if labels is not None and len(labels):
        return [f"class_{label}" for label in range(int(labels.max()) + 1)]
    return None

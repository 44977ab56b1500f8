"""Clips from one HDF5 file in the reference VideoGPT (BAIR) layout, optionally with labels, actions, positions.

Layout, per split ("train" / "test"):
  {split}_data       uint8 (total_frames, H, W, 3)  all videos' frames, back to back
  {split}_idx        int64 (n_videos,)              first frame of each video (video i: idx[i] .. idx[i+1])
  {split}_actions    float32 (total_frames, A)      optional; actions[j] moved the world from frame j-1 to j
  {split}_labels     int64 (n_videos,)              optional class per video
  {split}_positions  float32 (total_frames, K, 2)   optional object positions per frame
  file attributes    class_names (JSON list), action_dim, world, fps (all optional)
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
    "'{split}_idx' int64 start frame per video, optionally '{split}_actions' (total_frames, A), "
    "'{split}_labels' (n_videos,), '{split}_positions' (total_frames, K, 2)"
)


class HDF5VideoDataset(Dataset):
    """Random (train) or fixed (eval) clips of the videos in one split of an HDF5 file.

    `train` picks the split ("train" or "test") unless `split` names one, and random vs fixed
    windows. `resolution=None` keeps the stored size (reported as `resolution` when square).
    Items: "video" float (3, T, H, W) in [-0.5, 0.5]; with the optional data sets also "label"
    int64 scalar, "actions" float32 (T, A) and "positions" float32 (T, K, 2). With
    frame_stride > 1 a clip frame's action is the sum of the per-frame actions since the
    previous clip frame (displacements add up; one-hot actions become counts). Videos shorter
    than one clip are left out with a warning. The file is opened lazily, once per process, so
    the data set can go to DataLoader workers.
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
        labels = self._read_per_video(file, total_frames, len(starts))
        self._read_attributes(file.attrs, labels)
        self._keep_long_videos(starts, ends)
        self.labels = labels

    def _read_per_video(self, file, total_frames: int, n_videos: int) -> np.ndarray | None:
        """Check the per-frame arrays (actions, positions); the per-video labels, or None."""
        self.has_actions = self._key("actions") in file
        self.has_positions = self._key("positions") in file
        self.has_labels = self._key("labels") in file
        if self.has_actions:
            self._check_per_frame(file, "actions", total_frames, ndim=2)
        if self.has_positions:
            self._check_per_frame(file, "positions", total_frames, ndim=3)
        labels = None
        if self.has_labels:
            labels = np.asarray(file[self._key("labels")][()], dtype=np.int64).reshape(-1)
            if len(labels) != n_videos:
                raise ValueError(
                    f"{self.path}: '{self._key('labels')}' has {len(labels)} entries for {n_videos} videos"
                )
        self.action_dim = file[self._key("actions")].shape[1] if self.has_actions else 0
        return labels

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

    def _check_per_frame(self, file, name: str, total_frames: int, ndim: int) -> None:
        dataset = file[self._key(name)]
        if dataset.ndim != ndim or dataset.shape[0] != total_frames:
            raise ValueError(
                f"{self.path}: '{self._key(name)}' has shape {dataset.shape}; expected {ndim} dims with "
                f"one row per frame ({total_frames})"
            )

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
        if self.labels is not None:
            item["label"] = torch.tensor(self.labels[video], dtype=torch.int64)
        if self.has_actions:
            # Each kept frame gets the steps into it since the previous kept frame (within this video).
            low = max(first, start - stride + 1)
            steps = np.asarray(self.file[self._key("actions")][low:stop], dtype=np.float32)
            item["actions"] = torch.from_numpy(_sum_between_kept(steps, start - low, stride))
        if self.has_positions:
            positions = self.file[self._key("positions")][start:stop:stride]
            item["positions"] = torch.from_numpy(np.asarray(positions, dtype=np.float32))
        return item

    def __repr__(self) -> str:
        extras = [name for name, has in (("labels", self.has_labels), ("actions", self.has_actions),
                                         ("positions", self.has_positions)) if has]  # fmt: skip
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

"""The data set split `videogpt eval` scores, read as fixed clips so that every run scores the same ones."""
from __future__ import annotations

import os
from pathlib import Path

from torch.utils.data import Dataset

from videogpt_core.data import HDF5_SUFFIXES, open_dataset
from videogpt_core.data.transforms import ClipWindows


def open_eval_dataset(path: str | os.PathLike, sequence_length: int, resolution: int | None, split: str,
                      frame_stride: int = 1) -> Dataset:
    """The clips of `split` with fixed windows (the first of each video), so every run scores the same clips."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    path = Path(path)
    if path.is_file() and path.suffix.lower() in HDF5_SUFFIXES:
        return open_dataset(path, sequence_length, resolution, train=False, split=split, frame_stride=frame_stride)
    dataset = open_dataset(path, sequence_length, resolution, train=split == "train", frame_stride=frame_stride)
    if getattr(dataset, "windows", None) is not None and dataset.windows.train:
        # Folder data sets pick their list with `train` but then draw random windows; evaluation wants fixed ones.
        dataset.windows = ClipWindows(sequence_length, frame_stride, train=False)
    return dataset


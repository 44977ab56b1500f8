"""Data sets: video folders, UCF-101, BAIR-style HDF5, cached VQ-VAE codes (and synthetic worlds).

`open_dataset(path, ...)` picks the right class for a path. Names are imported on first use, so
importing this package (or its `worlds`) does not load OpenCV or h5py.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

_EXPORTS = {
    "VideoFolderDataset": "videogpt_core.data.video_folder",
    "UCF101Dataset": "videogpt_core.data.ucf101",
    "HDF5VideoDataset": "videogpt_core.data.hdf5",
    "CodeDataset": "videogpt_core.data.codes",
    "encode_dataset": "videogpt_core.data.codes",
    "resize_center_crop": "videogpt_core.data.transforms",
    "to_model_video": "videogpt_core.data.transforms",
    "from_model_video": "videogpt_core.data.transforms",
    "clip_window": "videogpt_core.data.transforms",
}

__all__ = [*_EXPORTS, "open_dataset"]

HDF5_SUFFIXES = (".hdf5", ".h5")


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_dataset(path: str | Path, sequence_length: int, resolution: int | None, train: bool = True, **kwargs: Any):
    """The data set for `path`: an .hdf5/.h5 file -> HDF5VideoDataset; a folder with UCF-101 split
    lists (trainlist01.txt or ucfTrainTestlist/) -> UCF101Dataset; any other folder -> VideoFolderDataset.

    Extra keyword arguments (frame_stride, eval_seed, split_file, ...) go to the chosen class.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data set not found: {path}")
    if path.is_file():
        if path.suffix.lower() in HDF5_SUFFIXES:
            from videogpt_core.data.hdf5 import HDF5VideoDataset

            return HDF5VideoDataset(path, sequence_length, resolution, train=train, **kwargs)
        raise ValueError(
            f"{path} is a single file; a data set is an .hdf5/.h5 file or a folder of videos "
            "(to read one video use videogpt_core.io.video_io.read_video)"
        )
    if (path / "meta.json").is_file() and (path / "codes.npy").is_file():
        raise ValueError(
            f"{path} is a cache of VQ-VAE codes, not videos; load it with "
            "videogpt_core.data.CodeDataset(path) to train a prior"
        )
    if resolution is None:
        raise ValueError(f"a resolution is needed to crop the videos under {path} to squares")
    if (path / "trainlist01.txt").is_file() or (path / "ucfTrainTestlist").is_dir():
        from videogpt_core.data.ucf101 import UCF101Dataset

        return UCF101Dataset(path, sequence_length, resolution, train=train, **kwargs)
    from videogpt_core.data.video_folder import VideoFolderDataset

    return VideoFolderDataset(path, sequence_length, resolution, train=train, **kwargs)

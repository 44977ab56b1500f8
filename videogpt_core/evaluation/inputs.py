"""What `videogpt eval` scores: the checkpoint (a pipeline folder or a VQ-VAE folder) and the data set split,
read as fixed clips so that every run scores the same ones."""
from __future__ import annotations

import json
import os
from pathlib import Path

from torch.utils.data import Dataset

from videogpt_core.checkpoints import CONFIG_NAME, load_models
from videogpt_core.data import HDF5_SUFFIXES, open_dataset
from videogpt_core.data.transforms import ClipWindows
from videogpt_core.model_folders import codec_folder, pipeline_folder_in
from videogpt_core.prior import VideoGPT
from videogpt_core.vqvae import VQVAE


def load_checkpoint(directory: str | os.PathLike) -> tuple[VQVAE, VideoGPT | None]:
    """(vqvae, prior or None) from a pipeline folder (vqvae/ + prior/), a folder with only vqvae/, a VQ-VAE
    folder (config.json + model.safetensors) or a training run folder (model/). Models are on the CPU."""
    directory = Path(directory).expanduser()
    pipeline = pipeline_folder_in(directory) if directory.is_dir() else None
    if pipeline is not None:
        return load_models(pipeline)
    directory = codec_folder(directory)  # or an error saying which folders would do
    config_path = directory / CONFIG_NAME
    try:
        kind = json.loads(config_path.read_text()).get("model_kind")
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        kind = None  # VQVAE.from_pretrained reports the missing or bad file
    if kind == VideoGPT.model_kind:
        raise ValueError(f"{directory} holds a prior alone, which cannot be evaluated without its VQ-VAE; pass "
                         "the pipeline folder that holds both vqvae/ and prior/")
    return VQVAE.from_pretrained(directory), None


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


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
from videogpt_core.prior import VideoGPT
from videogpt_core.vqvae import VQVAE

def load_checkpoint(directory: str | os.PathLike) -> tuple[VQVAE, VideoGPT | None]:
    """(vqvae, prior or None) from a pipeline folder (vqvae/ + prior/), a folder with only vqvae/, or a
    VQ-VAE folder (config.json + model.safetensors). Models are on the CPU."""
    directory = Path(directory)
    if not directory.exists():
        raise FileNotFoundError(f"checkpoint not found: {directory}; pass a VQ-VAE folder (config.json + "
                                "model.safetensors) or a pipeline folder (vqvae/ + prior/)")
    if not directory.is_dir():
        raise ValueError(f"{directory} is a file; --checkpoint takes a VQ-VAE folder or a pipeline folder")
    if (directory / "vqvae").is_dir() and (directory / "prior").is_dir():
        return load_models(directory)
    if (directory / "vqvae").is_dir():
        return VQVAE.from_pretrained(directory / "vqvae"), None
    config_path = directory / CONFIG_NAME
    if not config_path.is_file():
        raise FileNotFoundError(f"{directory} holds neither {CONFIG_NAME} (a VQ-VAE folder) nor vqvae/ and "
                                "prior/ (a pipeline folder)")
    try:
        kind = json.loads(config_path.read_text()).get("model_kind")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        kind = None  # VQVAE.from_pretrained reports the bad file
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


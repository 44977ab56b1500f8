"""Pipeline folders: `vqvae/` and `prior/` side by side, each a model folder in the format of pretrained.py
(config.json + model.safetensors)."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from videogpt_core.model_folders import pipeline_folder
from videogpt_core.pretrained import CONFIG_NAME, WEIGHTS_NAME
from videogpt_core.prior import VideoGPT
from videogpt_core.vqvae import VQVAE

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "load_models", "save_pipeline"]


def save_pipeline(directory: str | os.PathLike, vqvae, prior, dtype: torch.dtype | None = None) -> Path:
    directory = Path(directory)
    vqvae.save_pretrained(directory / "vqvae", dtype=dtype)
    prior.save_pretrained(directory / "prior", dtype=dtype)
    return directory


def load_models(directory: str | os.PathLike, map_location: str | torch.device = "cpu"):
    """(vqvae, prior) from a pipeline folder (or a training run folder holding one in model/)."""
    directory = pipeline_folder(directory)
    return (VQVAE.from_pretrained(directory / "vqvae", map_location),
            VideoGPT.from_pretrained(directory / "prior", map_location))

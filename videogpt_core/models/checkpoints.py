"""Folders -> models: the one loader by which every command, the evaluation and the demo turn a folder into a
codec (VQ-VAE), a prior, or both; and `save_pipeline`, its inverse.

Which folder holds which model is model_folders.py's; each model's own format (config.json + model.safetensors)
is pretrained.py's. `load_pipeline` (inference/pipeline.py) wraps `load_models` in a pipeline.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from videogpt_core.models.model_folders import codec_folder, pipeline_folder, pipeline_folder_in
from videogpt_core.models.pretrained import CONFIG_NAME, WEIGHTS_NAME
from videogpt_core.models.prior import VideoGPT
from videogpt_core.models.vqvae import VQVAE

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "load_codec_and_prior", "load_models", "load_prior", "load_vqvae",
           "save_pipeline"]


def save_pipeline(directory: str | os.PathLike, vqvae, prior, dtype: torch.dtype | None = None) -> Path:
    directory = Path(directory)
    vqvae.save_pretrained(directory / "vqvae", dtype=dtype)
    prior.save_pretrained(directory / "prior", dtype=dtype)
    return directory


def load_vqvae(folder: str | os.PathLike, map_location: str | torch.device = "cpu") -> VQVAE:
    """The VQ-VAE of a VQ-VAE folder, a pipeline folder (vqvae/) or a training run folder (model/)."""
    return VQVAE.from_pretrained(codec_folder(folder), map_location)  # a prior's folder is refused by its kind


def load_prior(folder: str | os.PathLike, map_location: str | torch.device = "cpu") -> VideoGPT:
    """The prior of a pipeline folder (or a training run folder holding one in model/)."""
    return VideoGPT.from_pretrained(pipeline_folder(folder) / "prior", map_location)


def load_models(directory: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[VQVAE, VideoGPT]:
    """(vqvae, prior) from a pipeline folder (or a training run folder holding one in model/)."""
    directory = pipeline_folder(directory)
    return (VQVAE.from_pretrained(directory / "vqvae", map_location),
            VideoGPT.from_pretrained(directory / "prior", map_location))


def load_codec_and_prior(directory: str | os.PathLike) -> tuple[VQVAE, VideoGPT | None]:
    """(vqvae, prior or None) from a pipeline folder, a folder with only vqvae/, a VQ-VAE folder or a training
    run folder (model/). Models are on the CPU."""
    directory = Path(directory).expanduser()
    pipeline = pipeline_folder_in(directory) if directory.is_dir() else None
    if pipeline is not None:
        return load_models(pipeline)
    directory = codec_folder(directory)  # or an error saying which folders would do
    try:
        kind = json.loads((directory / CONFIG_NAME).read_text()).get("model_kind")
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        kind = None  # VQVAE.from_pretrained reports the missing or bad file
    if kind == VideoGPT.model_kind:
        raise ValueError(f"{directory} holds a prior alone, which cannot be evaluated without its VQ-VAE; pass "
                         "the pipeline folder that holds both vqvae/ and prior/")
    return VQVAE.from_pretrained(directory), None

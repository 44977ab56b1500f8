"""Stage 2 built from its configs: the frozen VQ-VAE, its cached codes, the prior, and the trainer run."""
from __future__ import annotations

import dataclasses
import sys
from typing import Any

import torch
import torch.nn as nn
from torch.utils.data import Dataset

from videogpt_core.models.checkpoints import load_vqvae
from videogpt_core.models.conditions import prior_config_from_data
from videogpt_core.models.config import VideoGPTConfig, config_from_dict
from videogpt_core.models.model_folders import codec_folder
from videogpt_core.models.prior import VideoGPT
from videogpt_core.models.vqvae import VQVAE
from videogpt_core.training.prior_task import PriorTask
from videogpt_core.training.run_folder import saved_task
from videogpt_core.training.stage_options import PriorStageOptions, announce_size, apply_size
from videogpt_core.training.trainer import Trainer
from videogpt_core.training.trainer_config import TrainerConfig, TrainResult


def _open_codes(options: PriorStageOptions, with_val: bool) -> tuple[Dataset, Dataset | None]:
    if options.codes is None:
        raise ValueError("--codes is required: a folder written by `videogpt encode-dataset`")
    from videogpt_core.data import CodeDataset

    train = CodeDataset(options.codes)
    if not with_val:
        return train, None
    if options.val_data:
        return train, CodeDataset(options.val_data)
    # A code cache holds one split, so there is no "test split of the same data" to fall back on.
    print("note: no validation data; pass --val-data with a cache of the test split "
          "(`videogpt encode-dataset --split test`)", file=sys.stderr)
    return train, None


def _match_codec_to_codes(meta: dict[str, Any], vqvae, codes_path) -> None:
    """Raise unless `vqvae` made the codes. A per-frame codec codes each frame alone, so its training clip length
    is no property of its codes: it takes the length of the codes' windows (the exported pipeline then decodes
    a whole window at once, as it was encoded)."""
    if "n_codes" in meta and int(meta["n_codes"]) != vqvae.n_codes:
        raise ValueError(f"{codes_path}: codes of a VQ-VAE with {meta['n_codes']} codes, but --vqvae has "
                         f"{vqvae.n_codes}; pass the VQ-VAE that encoded them")
    shape = tuple(meta.get("latent_shape", vqvae.latent_shape))
    if vqvae.config.per_frame and shape[1:] == tuple(vqvae.latent_shape[1:]) and shape[0] != vqvae.latent_shape[0]:
        vqvae.config = dataclasses.replace(vqvae.config, sequence_length=shape[0] * vqvae.config.downsample[0])
    if shape != tuple(vqvae.latent_shape):
        raise ValueError(f"{codes_path}: codes of latent shape {tuple(meta['latent_shape'])}, but --vqvae makes "
                         f"{tuple(vqvae.latent_shape)}; pass the VQ-VAE that encoded them")


def _new_prior(options: PriorStageOptions, vqvae: nn.Module, train_dataset: Dataset, meta: dict[str, Any],
               seed: int) -> VideoGPT:
    """A prior for `vqvae`'s codes, conditioned on what the options ask for and the codes carry."""
    conditioned = prior_config_from_data(options.conditions, train_dataset, meta)
    cached_frames = int(meta.get("n_cond_frames", options.cond_frames))
    if options.cond_frames > cached_frames:
        raise ValueError(f"--cond-frames {options.cond_frames}: the code cache keeps {cached_frames} first frame(s) "
                         "per clip; re-encode it with `videogpt encode-dataset --cond-frames K`")
    torch.manual_seed(seed)
    return VideoGPT.for_vqvae(
        vqvae, hidden_dim=options.hidden_dim, n_heads=options.n_heads, n_layers=options.n_layers,
        dropout=options.dropout, attn_dropout=options.attn_dropout, n_cond_frames=options.cond_frames,
        cond_drop_prob=options.cond_drop_prob, frame_encoder_widths=options.frame_encoder_widths,
        frame_encoder_blocks=options.frame_encoder_blocks, **conditioned)


def train_prior(trainer: TrainerConfig, options: PriorStageOptions, train_dataset: Dataset | None = None,
                val_dataset: Dataset | None = None, vqvae: nn.Module | None = None,
                callbacks: list | None = None) -> TrainResult:
    """Stage 2. train_dataset: items {codes, and what the prior conditions on} (default: the cache in
    options.codes);
    vqvae: the frozen VQ-VAE (default: loaded from options.vqvae, or on resume the checkpoint's)."""
    trainer, options, size = apply_size(trainer, options, "prior")
    saved = saved_task(trainer.out_dir, trainer.resume, "prior")
    vqvae_path = None
    if vqvae is None:
        source = options.vqvae or (saved or {}).get("vqvae")
        if not source:
            raise ValueError("--vqvae is required: the VQ-VAE folder whose codes --codes holds")
        vqvae_path = str(codec_folder(source))
        vqvae = load_vqvae(vqvae_path)
    if train_dataset is None:
        train_dataset, opened_val = _open_codes(options, with_val=val_dataset is None)
        val_dataset = val_dataset if val_dataset is not None else opened_val
    meta = dict(getattr(train_dataset, "meta", None) or {})
    _match_codec_to_codes(meta, vqvae, options.codes)
    if saved is not None:
        prior = VideoGPT(config=config_from_dict(VideoGPTConfig, saved["prior_config"], "checkpoint"))
    else:
        prior = _new_prior(options, vqvae, train_dataset, meta, trainer.seed)
    announce_size(options, size, trainer.batch_size, prior, resumed=saved is not None)
    context_noise = options.context_noise
    if context_noise is None:
        context_noise = float((saved or {}).get("context_noise", 0.0))
    context_noise_from = options.context_noise_from or (saved or {}).get("context_noise_from", "random")
    task = PriorTask(prior, vqvae, vqvae_path, context_noise, context_noise_from)
    return Trainer(trainer, task, train_dataset, val_dataset, callbacks).fit()

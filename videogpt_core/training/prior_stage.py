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


FIXED_BY_START = ("hidden_dim", "n_heads", "frame_encoder_widths", "frame_encoder_blocks")


def deepened(prior: VideoGPT, n_layers: int, **config_changes) -> VideoGPT:
    """`prior` with n_layers blocks: its blocks spread evenly among new ones (4 -> 8: old, new, old, new, ...),
    each new block's attention and MLP outputs zeroed, so it adds nothing to the residual stream and the deeper
    prior computes what `prior` did; training then grows them. A deeper start keeps what the smaller prior
    learned where a fresh model of the larger size would spend its first thousands of steps relearning it.
    config_changes: config fields no weight depends on (dropout), set in the new prior's config."""
    old = prior.config.n_layers
    if n_layers < old:
        raise ValueError(f"--n-layers {n_layers}: the prior of --init-from has {old} blocks; a start can add blocks, "
                         "not drop them")
    grown = VideoGPT(config=dataclasses.replace(prior.config, n_layers=n_layers, **config_changes))
    kept_at = [i * n_layers // old for i in range(old)]
    state = {}
    for name, tensor in prior.state_dict().items():
        if name.startswith("blocks."):
            _, index, rest = name.split(".", 2)
            name = f"blocks.{kept_at[int(index)]}.{rest}"
        state[name] = tensor
    new_blocks = [i for i in range(n_layers) if i not in kept_at]
    for i in new_blocks:  # the new blocks' own initialisation, outputs zeroed
        for name, tensor in grown.blocks[i].state_dict().items():
            state[f"blocks.{i}.{name}"] = tensor
    grown.load_state_dict(state)
    with torch.no_grad():
        for i in new_blocks:
            block = grown.blocks[i]
            for output in [block.attn.fc, block.fc_block[2]] + ([block.enc_attn.fc] if block.use_frames else []):
                output.weight.zero_()
                output.bias.zero_()
    return grown


def _starting_prior(options: PriorStageOptions, vqvae: nn.Module) -> VideoGPT:
    """Fine-tuning: the prior of --init-from (a pipeline or training run folder), deeper with a larger --n-layers
    (`deepened`) and with --dropout / --attn-dropout when given; every other part of its shape is its own."""
    from videogpt_core.models.checkpoints import load_prior

    prior = load_prior(options.init_from).float()
    clashing = {name: getattr(options, name) for name in FIXED_BY_START
                if getattr(options, name) is not None and getattr(options, name) != getattr(prior.config, name)}
    if options.cond_frames and options.cond_frames != prior.config.n_cond_frames:
        clashing["cond_frames"] = options.cond_frames
    if clashing:
        raise ValueError(f"--init-from {options.init_from} fixes the prior's shape; drop the options that differ "
                         f"from it: {clashing}")
    if (prior.n_codes, tuple(prior.latent_shape)) != (vqvae.n_codes, tuple(vqvae.latent_shape)):
        raise ValueError(f"--init-from {options.init_from} models {prior.n_codes} codes on a {tuple(prior.latent_shape)} "
                         f"grid, --vqvae makes {vqvae.n_codes} on {tuple(vqvae.latent_shape)}: pass the codec it was "
                         "trained on")
    changes = {name: getattr(options, name) for name in ("dropout", "attn_dropout") if getattr(options, name) is not None}
    return deepened(prior, options.n_layers or prior.config.n_layers, **changes)


def train_prior(trainer: TrainerConfig, options: PriorStageOptions, train_dataset: Dataset | None = None,
                val_dataset: Dataset | None = None, vqvae: nn.Module | None = None,
                callbacks: list | None = None) -> TrainResult:
    """Stage 2. train_dataset: items {codes, and what the prior conditions on} (default: the cache in
    options.codes);
    vqvae: the frozen VQ-VAE (default: loaded from options.vqvae, or on resume the checkpoint's)."""
    saved = saved_task(trainer.out_dir, trainer.resume, "prior")
    start_from = options.init_from if saved is None else None
    trainer, filled, size = apply_size(trainer, options, "prior")
    options = options if start_from else filled  # a start's shape is its own: the size preset fills nothing
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
    elif start_from is not None:
        prior = _starting_prior(options, vqvae)
    else:
        prior = _new_prior(options, vqvae, train_dataset, meta, trainer.seed)
    announce_size(options, size, trainer.batch_size, prior, resumed=saved is not None)
    context_noise = options.context_noise
    if context_noise is None:
        context_noise = float((saved or {}).get("context_noise", 0.0))
    context_noise_from = options.context_noise_from or (saved or {}).get("context_noise_from", "random")
    task = PriorTask(prior, vqvae, vqvae_path, context_noise, context_noise_from)
    return Trainer(trainer, task, train_dataset, val_dataset, callbacks).fit()

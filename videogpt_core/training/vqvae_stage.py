"""Stage 1 built from its configs: the VQ-VAE, its videos, and the trainer run."""
from __future__ import annotations

import dataclasses
import sys
from typing import Callable

import torch
from torch.utils.data import Dataset

from videogpt_core.models.config import VQVAEConfig, config_from_dict
from videogpt_core.models.vqvae import VQVAE
from videogpt_core.training.run_folder import saved_task
from videogpt_core.training.stage_options import VQVAEStageOptions, announce_size, apply_size
from videogpt_core.training.trainer import Trainer
from videogpt_core.training.trainer_config import TrainerConfig, TrainResult
from videogpt_core.training.vqvae_task import VQVAETask

MODEL_OPTIONS = ("embedding_dim", "n_codes", "n_hiddens", "n_res_layers", "downsample", "causal", "per_frame",
                 "fsq_levels", "sequence_length", "resolution")


def _open_val_split(path: str, opener: Callable[..., Dataset], **kwargs) -> Dataset | None:
    try:
        return opener(path, train=False, **kwargs)
    except (ValueError, FileNotFoundError, KeyError) as error:
        print(f"note: no validation split in {path} ({error}); training without validation "
              "(pass --val-data for one)", file=sys.stderr)
        return None


def _open_videos(options: VQVAEStageOptions, model_config: VQVAEConfig,
                 with_val: bool) -> tuple[Dataset, Dataset | None]:
    """The training videos and (with_val) the validation videos: --val-data, else the test split of --data."""
    if options.data is None:
        raise ValueError("--data is required: a data set path (see `videogpt make-dataset`)")
    from videogpt_core.data import open_dataset

    kwargs = dict(sequence_length=model_config.sequence_length, resolution=model_config.resolution,
                  frame_stride=options.frame_stride)
    train = open_dataset(options.data, train=True, **kwargs)
    if not with_val:
        return train, None
    if options.val_data:
        return train, open_dataset(options.val_data, train=False, **kwargs)
    return train, _open_val_split(options.data, open_dataset, **kwargs)


def _starting_model(options: VQVAEStageOptions) -> VQVAE:
    """Fine-tuning: the model of --init-from, its frame size and clip length replaced by the options' (the
    network is convolutional, so the weights fit any size the downsampling divides). A new --downsample is taken
    when it has as many halvings as the model's (4,4,4 -> 2,4,4): every layer keeps its shape, only strides
    change, so a codec of a finer grid starts from a coarser one's weights."""
    from videogpt_core.models.checkpoints import load_vqvae

    model = load_vqvae(options.init_from)
    fixed = [name for name in MODEL_OPTIONS if name not in ("sequence_length", "resolution", "downsample")]
    clashing = {name: getattr(options, name) for name in fixed
                if getattr(options, name) is not None and getattr(options, name) != getattr(model.config, name)}
    if clashing:
        raise ValueError(f"--init-from {options.init_from} fixes the model's shape; drop the options that differ "
                         f"from it: {clashing} (the model has "
                         f"{ {name: getattr(model.config, name) for name in clashing} })")
    config = dataclasses.replace(model.config, sequence_length=options.sequence_length,
                                 resolution=options.resolution)
    if options.downsample is None or tuple(options.downsample) == tuple(model.config.downsample):
        model.config = config
        return model
    old, new = tuple(model.config.downsample), tuple(options.downsample)
    if options.decoder_only:
        raise ValueError(f"--decoder-only keeps every clip's codes, so it keeps the grid: drop --downsample "
                         f"{','.join(map(str, new))} (the model's is {','.join(map(str, old))})")
    if max(new) != max(old):
        raise ValueError(f"--downsample {','.join(map(str, new))} needs {max(new).bit_length() - 1} strided layers, "
                         f"the model of --init-from has {max(old).bit_length() - 1} ({','.join(map(str, old))}): "
                         f"keep the largest factor, e.g. {max(old)} along one axis")
    regridded = VQVAE(dataclasses.replace(config, downsample=new))
    regridded.load_state_dict(model.state_dict())
    return regridded


def train_vqvae(trainer: TrainerConfig, options: VQVAEStageOptions, train_dataset: Dataset | None = None,
                val_dataset: Dataset | None = None, callbacks: list | None = None) -> TrainResult:
    """Stage 1. Data sets given here replace options.data / val_data (tests, scripts)."""
    saved = saved_task(trainer.out_dir, trainer.resume, "vqvae")
    start = _starting_model(options) if saved is None and options.init_from else None
    decoder_only = saved.get("decoder_only", False) if saved is not None else options.decoder_only
    if decoder_only and saved is None and start is None:
        raise ValueError("--decoder-only trains the decoder of an existing codec: give it with --init-from")
    trainer, options, size = apply_size(trainer, options, "vqvae")
    if saved is not None:
        model_config = config_from_dict(VQVAEConfig, saved["vqvae_config"], "checkpoint")
    elif start is not None:
        model_config = start.config
    else:
        model_config = VQVAEConfig(**{name: getattr(options, name) for name in MODEL_OPTIONS
                                      if getattr(options, name) is not None})
    if train_dataset is None:
        train_dataset, opened_val = _open_videos(options, model_config, with_val=val_dataset is None)
        val_dataset = val_dataset if val_dataset is not None else opened_val
    torch.manual_seed(trainer.seed)  # the same initial weights on every process
    exposure_jitter = options.exposure_jitter
    if exposure_jitter is None:
        exposure_jitter = float((saved or {}).get("exposure_jitter", 0.0))
    task = VQVAETask(start if start is not None else VQVAE(config=model_config), decoder_only, exposure_jitter)
    announce_size(options, size, trainer.batch_size, task.model, resumed=saved is not None)
    return Trainer(trainer, task, train_dataset, val_dataset, callbacks).fit()

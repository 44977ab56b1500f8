"""What the two training stages build besides the trainer (VQVAEStageOptions, PriorStageOptions), and the
size preset that fills the options left unset (None)."""
from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass

import torch
import torch.nn as nn

from videogpt_core.models.fsq import fsq_codebook_shape
from videogpt_core.models.prior import CONTEXT_NOISE_SOURCES
from videogpt_core.training.run_folder import saved_trainer_config
from videogpt_core.training.sizes import default_size, preset
from videogpt_core.training.trainer_config import TrainerConfig


@dataclass
class VQVAEStageOptions:
    """Stage 1: the videos and the VQ-VAE's shape (ignored on resume: the checkpoint decides)."""

    data: str | None = None  # an .hdf5 file, a video folder or UCF-101
    val_data: str | None = None  # None: the test split of `data`
    frame_stride: int = 1
    size: str | None = None  # small | base; None: chosen from the device
    init_from: str | None = None  # a VQ-VAE (or pipeline) folder whose shape and weights training starts from
    decoder_only: bool = False  # with init_from: train the decoder only, every clip keeps its codes
    exposure_jitter: float | None = None  # share of training clips made dim or flat; None: 0, or on resume the run's
    embedding_dim: int | None = None
    n_codes: int | None = None
    n_hiddens: int | None = None
    n_res_layers: int | None = None
    downsample: tuple[int, int, int] | None = None  # None: VQVAEConfig's (4, 4, 4), or --init-from's
    causal: bool | None = None  # None: not causal, or as --init-from's
    per_frame: bool | None = None  # None: not per frame, or as --init-from's
    fsq_levels: tuple[int, ...] | None = None  # finite scalar quantisation; None: the EMA codebook
    sequence_length: int = 16
    resolution: int = 64

    def __post_init__(self):
        if self.exposure_jitter is not None and not 0.0 <= self.exposure_jitter <= 1.0:
            raise ValueError(f"--exposure-jitter is a share of the clips, from 0 to 1; got {self.exposure_jitter}")
        if self.per_frame and self.causal is None:
            self.causal = True  # a per-frame codec is causal too
        if self.fsq_levels:
            # The levels fix the codebook: its size is their product, a code vector has one entry per level.
            derived = dict(zip(("n_codes", "embedding_dim"), fsq_codebook_shape(self.fsq_levels)))
            clashing = {name: getattr(self, name) for name, value in derived.items()
                        if getattr(self, name) not in (None, value)}
            if clashing:
                raise ValueError(f"--fsq-levels {','.join(map(str, self.fsq_levels))} means n_codes="
                                 f"{derived['n_codes']} and embedding_dim={derived['embedding_dim']}; drop {clashing}")
            self.n_codes, self.embedding_dim = derived["n_codes"], derived["embedding_dim"]


@dataclass
class PriorStageOptions:
    """Stage 2: the cached codes, their VQ-VAE and the prior's shape (ignored on resume)."""

    codes: str | None = None  # a folder written by `videogpt encode-dataset`
    vqvae: str | None = None  # the VQ-VAE that made the codes
    val_data: str | None = None  # a code cache of held-out clips; None: no validation
    size: str | None = None
    init_from: str | None = None  # a prior (pipeline or run folder) whose weights training starts from
    hidden_dim: int | None = None
    n_heads: int | None = None
    n_layers: int | None = None
    dropout: float | None = None
    attn_dropout: float | None = None
    cond_frames: int = 0
    frame_encoder_widths: tuple[int, ...] | None = None
    frame_encoder_blocks: tuple[int, ...] | None = None
    conditions: tuple[str, ...] = ()  # "class", "actions": see models/conditions.py TRAINABLE_CONDITIONS
    cond_drop_prob: float = 0.0
    context_noise: float | None = None  # see VideoGPT.loss; None: 0, or on resume the run's
    context_noise_from: str | None = None  # see VideoGPT.loss; None: "random", or on resume the run's

    def __post_init__(self):
        self.conditions = tuple(self.conditions or ())
        if self.context_noise is not None and not 0.0 <= self.context_noise <= 1.0:
            raise ValueError(f"--context-noise is a share of the codes, from 0 to 1; got {self.context_noise}")
        if self.context_noise_from is not None and self.context_noise_from not in CONTEXT_NOISE_SOURCES:
            raise ValueError(f"--context-noise-from is one of {', '.join(CONTEXT_NOISE_SOURCES)}; "
                             f"got {self.context_noise_from!r}")


StageOptions = VQVAEStageOptions | PriorStageOptions


def apply_size(trainer: TrainerConfig, options: StageOptions, stage: str) -> tuple[TrainerConfig, StageOptions, str]:
    """Fill the options left unset (None) from the size preset, chosen from the device when not given;
    returns the filled configs and the size. On resume an unset batch size is the checkpoint's, so the data
    order continues."""
    size = options.size or default_size()
    values = preset(stage, size)
    batch_size = values.pop("batch_size")
    if trainer.batch_size is None:
        if trainer.resume:
            batch_size = saved_trainer_config(trainer.out_dir).get("batch_size", batch_size)
        trainer = dataclasses.replace(trainer, batch_size=batch_size)
    unset = {name: value for name, value in values.items() if getattr(options, name) is None}
    return trainer, dataclasses.replace(options, **unset), size


def announce_size(options: StageOptions, size: str, batch_size: int, model: nn.Module, resumed: bool) -> None:
    if int(os.environ.get("RANK", "0")) != 0:
        return
    n_params = sum(p.numel() for p in model.parameters()) / 1e6
    if resumed:
        origin = "the checkpoint's shape"
    elif getattr(options, "init_from", None):
        origin = f"started from the weights of {options.init_from}"
    elif options.size is None:
        device = "a CUDA GPU" if torch.cuda.is_available() else "no CUDA GPU"
        other = "small" if size == "base" else "base"
        origin = f"{size}, chosen for this machine ({device}; --size {other} for the other preset)"
    else:
        origin = size
    print(f"model size: {origin}; {n_params:.2f}M parameters, batch size {batch_size} per process", file=sys.stderr)

"""Shared by the training tests: tiny data sets a few steps can learn, and configs from flat option dicts."""
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from videogpt_core.training import PriorStageOptions, TrainerConfig, VQVAEStageOptions

REPO = Path(__file__).resolve().parents[1]
TINY_VQVAE = dict(embedding_dim=8, n_codes=16, n_hiddens=16, n_res_layers=1, downsample=(2, 4, 4),
                  sequence_length=4, resolution=16)
QUIET = dict(progress=False, num_workers=0, log_every=1, val_every=1000, sample_every=1000, save_every=1000)


def configs(options_class, out, **flat):
    """(TrainerConfig, stage options) from one dict of options, as the command line gives them."""
    trainer_fields = {f.name for f in dataclasses.fields(TrainerConfig)}
    trainer = {k: v for k, v in flat.items() if k in trainer_fields}
    options = {k: v for k, v in flat.items() if k not in trainer_fields}
    return TrainerConfig(out_dir=str(out), **trainer), options_class(**options)


def vqvae_configs(out, **flat):
    return configs(VQVAEStageOptions, out, **flat)


def prior_configs(out, **flat):
    return configs(PriorStageOptions, out, **flat)


class MovingSquares(Dataset):
    """Tiny videos: a bright square drifting over a dark background, position fixed by the index,
    brightness drawn from the global torch RNG (so the trainer's per-item seeding matters)."""

    class_names = ["left", "right"]
    action_dim = 0

    def __init__(self, n: int, frames: int = 4, size: int = 16, offset: int = 0):
        self.n, self.frames, self.size, self.offset = n, frames, size, offset

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        rng = np.random.default_rng(index + self.offset)
        x, y = rng.integers(0, self.size - 5, size=2)
        direction = 1 if index % 2 else -1
        video = torch.full((3, self.frames, self.size, self.size), -0.4)
        brightness = 0.3 + 0.2 * torch.rand(()).item()
        for t in range(self.frames):
            xt = int(np.clip(x + direction * t, 0, self.size - 4))
            video[:, t, y:y + 4, xt:xt + 4] = brightness
        return {"video": video, "label": index % 2}


class StructuredCodes(Dataset):
    """Code grids (2, 4, 4) that depend on the label and the position: learnable by a tiny prior."""

    class_names = ["a", "b"]
    action_dim = 0

    def __init__(self, n: int, n_codes: int = 16):
        self.n, self.n_codes = n, n_codes
        self.meta = {"n_codes": n_codes, "latent_shape": [2, 4, 4], "class_names": self.class_names, "action_dim": 0}

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        label = index % 2
        t, h, w = torch.meshgrid(torch.arange(2), torch.arange(4), torch.arange(4), indexing="ij")
        codes = (label * 5 + t + h + 2 * w) % self.n_codes
        noise = torch.rand(codes.shape) < 0.1  # a little randomness from the (seeded) global RNG
        codes = torch.where(noise, torch.randint(0, self.n_codes, codes.shape), codes)
        return {"codes": codes.long(), "label": label}


def stop_at(step):
    def callback(trainer):
        if trainer.step == step:
            trainer.request_stop()
    return callback


def trainer_state(run_dir):
    return json.loads((Path(run_dir) / "checkpoint" / "trainer_state.json").read_text())


def vqvae_run(out, **changes):
    """A tiny VQ-VAE run's configs: a few steps on MovingSquares."""
    return vqvae_configs(out, **{"steps": 6, "batch_size": 4, "lr": 2e-3, "warmup": 2, **TINY_VQVAE,
                                 **{**QUIET, **changes}})


def prior_run(out, **changes):
    """A tiny class-conditional prior run's configs: a few steps on StructuredCodes."""
    return prior_configs(out, **{"steps": 6, "batch_size": 4, "lr": 3e-3, "warmup": 2, "hidden_dim": 24, "n_heads": 2,
                                 "n_layers": 1, "dropout": 0.1, "attn_dropout": 0.1, "conditions": ("class",),
                                 "cond_drop_prob": 0.2, **QUIET, **changes})

"""AdamW with weight decay on matrices only, and the warmup-then-cosine learning-rate schedule."""
from __future__ import annotations

import math

import torch
import torch.nn as nn


def lr_multiplier(step: int, warmup: int, total: int, min_ratio: float = 0.0) -> float:
    """Linear warmup over `warmup` steps, then a cosine from 1 down to min_ratio at `total`."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def adamw(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """Decay on matrices / kernels, never on biases or gains."""
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (decay if parameter.dim() >= 2 else no_decay).append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr)


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup: int, total: int,
                  min_ratio: float) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_multiplier(s, warmup, total, min_ratio))

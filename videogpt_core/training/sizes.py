"""Model-size presets of `videogpt train-vqvae` / `train-prior`: `small` trains at a usable speed on a CPU,
`base` is the reference implementation's size, meant for GPUs. The default follows the device.

A preset only fills the options a user did not give: every explicit flag wins, so any configuration
(e.g. a shipped checkpoint's, see checkpoints/*/README.md) stays reachable.
"""
from __future__ import annotations

from typing import Any

import torch

SIZES = ("small", "base")

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "vqvae": {
        # The shipped checkpoints' codec: 33 dB on the pusher world's test clips, 6.0M parameters.
        "small": dict(embedding_dim=64, n_codes=512, n_hiddens=128, n_res_layers=4, batch_size=8),
        "base": dict(embedding_dim=256, n_codes=2048, n_hiddens=240, n_res_layers=4, batch_size=16),
    },
    "prior": {
        # The shipped checkpoints' prior, regularised by residual dropout only: attention dropout sends
        # PyTorch's CPU attention to its slow unfused kernel (about 3x slower steps, see BENCHMARKS.md).
        "small": dict(hidden_dim=192, n_heads=6, n_layers=4, dropout=0.1, attn_dropout=0.0,
                      frame_encoder_widths=(32, 64, 96, 96), frame_encoder_blocks=(1, 1, 1, 1), batch_size=8),
        # The reference's BAIR prior and its ResNet-34 frame encoder.
        "base": dict(hidden_dim=576, n_heads=4, n_layers=8, dropout=0.2, attn_dropout=0.3,
                     frame_encoder_widths=(64, 128, 256, 240), frame_encoder_blocks=(3, 4, 6, 3), batch_size=16),
    },
}


def default_size() -> str:
    """`base` where a CUDA GPU trains, else `small`."""
    return "base" if torch.cuda.is_available() else "small"


def preset(stage: str, size: str) -> dict[str, Any]:
    """The option values of `size` for `stage` ("vqvae" or "prior")."""
    if stage not in PRESETS:
        raise ValueError(f"unknown training stage {stage!r}; expected one of {', '.join(PRESETS)}")
    if size not in SIZES:
        raise ValueError(f"--size must be one of {', '.join(SIZES)}, got {size!r}")
    return dict(PRESETS[stage][size])


def preset_help(stage: str, name: str) -> str:
    """'small: X, base: Y' for an option's help text."""
    def show(value):
        return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)

    return ", ".join(f"{size}: {show(PRESETS[stage][size][name])}" for size in SIZES)

"""Inception-I3D (Carreira & Zisserman 2017), the Kinetics-400 video classifier whose logits FVD compares.

Built to compute exactly what the TensorFlow original computes, so converted weights give the same numbers:
TensorFlow's "SAME" padding (asymmetric when the total is odd: the extra row goes after), max pools padded
with -inf, batch norm with a shift but no scale (epsilon 1e-3), and logits from a 1x1x1 convolution of the
(2, 7, 7)-average-pooled last block, averaged over the remaining time steps.

Input: float (N, 3, T, 224, 224) in [-1, 1], T >= 9 (FVD uses 16). Weights come from
`videogpt convert-i3d` (see videogpt_core/fvd/convert_i3d.py); nothing is downloaded.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from videogpt_core.models.pretrained import PretrainedMixin

I3D_RESOLUTION = 224  # the frame size I3D was trained on; its final 7x7 average pool assumes it
MIN_FRAMES = 9  # after the network's 8x temporal downsampling the (2, 7, 7) pool needs 2 time steps

# (name, the six branch widths): 1x1 | 1x1 -> 3x3x3 | 1x1 -> 3x3x3 | 3x3x3 max pool -> 1x1
_INCEPTION_BLOCKS = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


@dataclass
class I3DConfig:
    num_classes: int = 400
    batch_norm_eps: float = 1e-3
    source: str = ""  # where the weights came from (file and checksum), for the record

    def __post_init__(self):
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")
        if not self.batch_norm_eps > 0:
            raise ValueError(f"batch_norm_eps must be > 0, got {self.batch_norm_eps}")


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "SAME" padding of one axis: (before, after), the odd extra one after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel: tuple[int, ...], stride: tuple[int, ...], value: float) -> torch.Tensor:
    pads: list[int] = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride)):  # F.pad: last axis first
        pads += same_padding(size, k, s)
    return F.pad(x, pads, value=value) if any(pads) else x


def max_pool_same(x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> torch.Tensor:
    return F.max_pool3d(_pad_same(x, kernel, stride, float("-inf")), kernel, stride)


class Unit3D(nn.Module):
    """3D convolution (SAME padding, no bias) + batch norm without scale + ReLU; or, for the logits, a
    convolution with a bias alone."""

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, int, int] = (1, 1, 1),
                 stride: tuple[int, int, int] = (1, 1, 1), batch_norm: bool = True, eps: float = 1e-3):
        super().__init__()
        self.kernel, self.stride, self.batch_norm, self.eps = kernel, stride, batch_norm, eps
        self.conv = nn.Conv3d(in_channels, out_channels, kernel, stride, bias=not batch_norm)
        if batch_norm:
            self.bn_bias = nn.Parameter(torch.zeros(out_channels))
            self.register_buffer("bn_mean", torch.zeros(out_channels))
            self.register_buffer("bn_var", torch.ones(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = [same_padding(size, k, s) for size, k, s in zip(x.shape[2:], self.kernel, self.stride)]
        if all(before == after for before, after in pads):  # symmetric: let the convolution pad
            x = F.conv3d(x, self.conv.weight, self.conv.bias, self.stride, [before for before, _ in pads])
        else:
            x = self.conv(_pad_same(x, self.kernel, self.stride, 0.0))
        if not self.batch_norm:
            return x
        x = F.batch_norm(x, self.bn_mean, self.bn_var, None, self.bn_bias, training=False, eps=self.eps)
        return F.relu(x)


class InceptionBlock(nn.Module):
    def __init__(self, in_channels: int, widths: tuple[int, ...], eps: float):
        super().__init__()
        w0, w1a, w1b, w2a, w2b, w3 = widths
        self.branch0 = Unit3D(in_channels, w0, eps=eps)
        self.branch1a = Unit3D(in_channels, w1a, eps=eps)
        self.branch1b = Unit3D(w1a, w1b, (3, 3, 3), eps=eps)
        self.branch2a = Unit3D(in_channels, w2a, eps=eps)
        self.branch2b = Unit3D(w2a, w2b, (3, 3, 3), eps=eps)
        self.branch3 = Unit3D(in_channels, w3, eps=eps)
        self.out_channels = w0 + w1b + w2b + w3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch0(x),
            self.branch1b(self.branch1a(x)),
            self.branch2b(self.branch2a(x)),
            self.branch3(max_pool_same(x, (3, 3, 3), (1, 1, 1))),
        ], dim=1)


class InceptionI3D(PretrainedMixin, nn.Module):
    """forward(x) -> logits (N, num_classes); features(x) -> (logits, pooled (N, 1024))."""

    config_class = I3DConfig
    model_kind = "inception_i3d"

    def __init__(self, config: I3DConfig | None = None, **kwargs):
        super().__init__()
        self.config = self.resolve_config(config, kwargs)
        eps = self.config.batch_norm_eps
        self.conv1 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2), eps=eps)
        self.conv2 = Unit3D(64, 64, eps=eps)
        self.conv3 = Unit3D(64, 192, (3, 3, 3), eps=eps)
        self.blocks = nn.ModuleDict()
        channels = 192
        for name, widths in _INCEPTION_BLOCKS.items():
            self.blocks[name] = InceptionBlock(channels, widths, eps)
            channels = self.blocks[name].out_channels
        self.feature_dim = channels
        self.logits = Unit3D(channels, self.config.num_classes, batch_norm=False)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 5 or x.shape[1] != 3:
            raise ValueError(f"I3D takes videos (N, 3, T, H, W), got shape {tuple(x.shape)}")
        if tuple(x.shape[3:]) != (I3D_RESOLUTION, I3D_RESOLUTION):
            raise ValueError(f"I3D takes {I3D_RESOLUTION}x{I3D_RESOLUTION} frames, got {x.shape[3]}x{x.shape[4]}; "
                             "resize them first (videogpt_core.fvd.fvd.preprocess_for_i3d)")
        if x.shape[2] < MIN_FRAMES:
            raise ValueError(f"I3D needs at least {MIN_FRAMES} frames, got {x.shape[2]} (FVD uses 16)")

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (N, num_classes), pooled last-block features (N, 1024)), each averaged over time."""
        self._check_input(x)
        x = self.conv1(x)
        x = max_pool_same(x, (1, 3, 3), (1, 2, 2))
        x = self.conv3(self.conv2(x))
        x = max_pool_same(x, (1, 3, 3), (1, 2, 2))
        for name, block in self.blocks.items():
            if name == "Mixed_4b":
                x = max_pool_same(x, (3, 3, 3), (2, 2, 2))
            elif name == "Mixed_5b":
                x = max_pool_same(x, (2, 2, 2), (2, 2, 2))
            x = block(x)
        pooled = F.avg_pool3d(x, (2, 7, 7), stride=1)  # "VALID": (N, 1024, T', 1, 1)
        logits = self.logits(pooled)
        return logits.mean(dim=(2, 3, 4)), pooled.mean(dim=(2, 3, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)[0]

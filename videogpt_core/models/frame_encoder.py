"""The 3D ResNet that encodes conditioning frames for the prior's cross-attention (the reference's ResNet-34).

Frames (B, 3, K, H, W) -> features (B, K, H/4, W/4, C) channels-last. Widths and block counts are
configurable so small models can use a small encoder; the defaults are the reference's.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of a (B, C, T, H, W) tensor, computed in float32."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.float().movedim(1, -1)).movedim(-1, 1).type_as(x)


class NormReLU(nn.Module):
    def __init__(self, channels: int, relu: bool = True):
        super().__init__()
        self.norm = ChannelLayerNorm(channels)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        return F.relu(x) if self.relu else x


class FrameConv3d(nn.Conv3d):
    """A Conv3d (time never strided) that runs a one-frame input as the 2D convolution it is: the kernel's
    other time taps see only zero padding. A third of the work for the usual single first frame, and it
    avoids oneDNN's bf16 Conv3d, which returned NaN for such inputs under CPU autocast (torch 2.13, AMD EPYC
    with AVX-512-BF16)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[2] != 1 or self.stride[0] != 1 or self.kernel_size[0] != 2 * self.padding[0] + 1:
            return super().forward(x)
        # The one time tap that meets the frame; both operands contiguous: oneDNN crashed on a strided input.
        weight = self.weight[:, :, self.padding[0]].contiguous()
        return F.conv2d(x[:, :, 0].contiguous(), weight, self.bias, self.stride[1:], self.padding[1:])[:, :, None]


def _conv3(in_channels: int, out_channels: int, stride=1) -> nn.Conv3d:
    return FrameConv3d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


class ResidualBlock(nn.Module):
    def __init__(self, in_channels: int, channels: int, stride=1, projection: bool = False):
        super().__init__()
        self.conv1 = _conv3(in_channels, channels, stride)
        self.bnr1 = NormReLU(channels)
        self.conv2 = _conv3(channels, channels)
        self.bnr2 = NormReLU(channels)
        self.projection = projection
        if projection:
            self.proj_conv = FrameConv3d(in_channels, channels, 1, stride=stride, bias=False)
            self.proj_bnr = NormReLU(channels, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.proj_bnr(self.proj_conv(x)) if self.projection else x
        return F.relu(self.bnr2(self.conv2(self.bnr1(self.conv1(x)))) + shortcut)


class ResidualGroup(nn.Module):
    def __init__(self, in_channels: int, channels: int, n_blocks: int, stride):
        super().__init__()
        self.start_block = ResidualBlock(in_channels, channels, stride, projection=True)
        self.blocks = nn.ModuleList(ResidualBlock(channels, channels) for _ in range(n_blocks - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.start_block(x)
        for block in self.blocks:
            x = block(x)
        return x


class FrameEncoder(nn.Module):
    def __init__(self, widths=(64, 128, 256, 240), blocks=(3, 4, 6, 3)):
        super().__init__()
        self.stem = nn.Sequential(_conv3(3, widths[0]), NormReLU(widths[0]))
        # The spatial /4 happens in groups 2 and 3; time is never strided.
        strides = [(1, 1, 1), (1, 2, 2), (1, 2, 2), (1, 1, 1)]
        in_channels = widths[0]
        for i, (width, n_blocks, stride) in enumerate(zip(widths, blocks, strides), start=1):
            setattr(self, f"group{i}", ResidualGroup(in_channels, width, n_blocks, stride))
            in_channels = width
        self.out_channels = widths[-1]

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = self.stem(frames)
        for i in range(1, 5):
            x = getattr(self, f"group{i}")(x)
        return x.movedim(1, -1)  # (B, K, H/4, W/4, C)

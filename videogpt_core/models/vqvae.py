"""The VQ-VAE: a 3D-convolutional video codec with axial-attention residual blocks and an EMA codebook (or, with
`VQVAEConfig.fsq_levels`, finite scalar quantisation: fsq.py).

Causal option (`VQVAEConfig.causal`): time padded on the past side only and temporal attention masked, each
frame its own latent slice; frames 1..k then encode (and decode) the same whatever follows them, so a given
first frame is exact prefix codes for the prior. Per-frame option (`VQVAEConfig.per_frame`): kernels one frame
deep and no attention along time, so each frame is coded alone, whatever came before it.

Layer structure and parameter names follow the reference implementation, so its checkpoints convert 1:1.
"""
from __future__ import annotations

import math
from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F

from videogpt_core.models.attention import AxialBlock
from videogpt_core.models.codebook import Codebook
from videogpt_core.models.config import VQVAEConfig
from videogpt_core.models.fsq import FiniteScalarQuantizer
from videogpt_core.models.pretrained import PretrainedMixin


def _same_padding(kernel: tuple[int, ...], stride: tuple[int, ...], causal: bool = False) -> tuple[int, ...]:
    # Total padding k - s per axis, the extra one in front; F.pad wants the last axis first. Causal: time (the
    # first axis) is padded on the past side only, so no output looks at a later frame.
    pads = []
    for axis, (k, s) in enumerate(zip(reversed(kernel), reversed(stride))):
        p = k - s
        is_time = axis == len(kernel) - 1
        pads += [p, 0] if causal and is_time else [p // 2 + p % 2, p // 2]
    return tuple(pads)


def _triple(x) -> tuple[int, int, int]:
    return tuple(x) if isinstance(x, (tuple, list)) else (x, x, x)


def _kernel(size: int, per_frame: bool) -> tuple[int, int, int]:
    """A (T, H, W) kernel: one frame deep for a per-frame codec."""
    return (1, size, size) if per_frame else (size, size, size)


class SamePadConv3d(nn.Module):
    """A Conv3d whose output size is input size / stride (for inputs divisible by the stride); causal: output
    frame t sees input frames <= t only."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, bias: bool = True,
                 causal: bool = False):
        super().__init__()
        kernel_size, stride = _triple(kernel_size), _triple(stride)
        self.pad = _same_padding(kernel_size, stride, causal)
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size, stride=stride, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.pad))


class SamePadConvTranspose3d(nn.Module):
    """The transpose of SamePadConv3d: output size is input size * stride. Causal (time stride 1 only, where
    the transpose is a convolution with the kernel flipped): output frame t sees input frames <= t."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, bias: bool = True,
                 causal: bool = False):
        super().__init__()
        kernel_size, stride = _triple(kernel_size), _triple(stride)
        if causal and stride[0] != 1:
            raise ValueError("a causal transposed convolution cannot upsample time (stride 1 in time only)")
        self.pad = _same_padding(kernel_size, stride, causal)
        self.convt = nn.ConvTranspose3d(in_channels, out_channels, kernel_size, stride=stride, bias=bias,
                                        padding=tuple(k - 1 for k in kernel_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convt(F.pad(x, self.pad))


class AttentionResidualBlock(nn.Module):
    def __init__(self, n_hiddens: int, n_heads: int, causal: bool = False, per_frame: bool = False):
        super().__init__()
        self.block = nn.Sequential(
            nn.BatchNorm3d(n_hiddens), nn.ReLU(),
            SamePadConv3d(n_hiddens, n_hiddens // 2, _kernel(3, per_frame), bias=False, causal=causal),
            nn.BatchNorm3d(n_hiddens // 2), nn.ReLU(),
            SamePadConv3d(n_hiddens // 2, n_hiddens, 1, bias=False),
            nn.BatchNorm3d(n_hiddens), nn.ReLU(),
            AxialBlock(n_hiddens, n_heads, causal=causal, along_time=not per_frame),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def _residual_stack(config: VQVAEConfig) -> nn.Sequential:
    return nn.Sequential(
        *[AttentionResidualBlock(config.n_hiddens, config.n_attn_heads, config.causal, config.per_frame)
          for _ in range(config.n_res_layers)],
        nn.BatchNorm3d(config.n_hiddens), nn.ReLU(),
    )


def _halvings(factors: tuple[int, int, int]) -> list[tuple[int, int, int]]:
    """Per strided layer, the stride of each axis: axes that still need halving get 2, the others 1."""
    remaining = [int(math.log2(f)) for f in factors]
    strides = []
    for _ in range(max(remaining)):
        strides.append(tuple(2 if r > 0 else 1 for r in remaining))
        remaining = [r - 1 for r in remaining]
    return strides


class Encoder(nn.Module):
    def __init__(self, config: VQVAEConfig):
        super().__init__()
        n = config.n_hiddens
        self.convs = nn.ModuleList(
            SamePadConv3d(3 if i == 0 else n, n, _kernel(4, config.per_frame), stride=s, causal=config.causal)
            for i, s in enumerate(_halvings(config.downsample)))
        # The reference takes these in-channels from a loop variable and so crashes on a single halving.
        self.conv_last = SamePadConv3d(n, n, _kernel(3, config.per_frame), causal=config.causal)
        self.res_stack = _residual_stack(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = F.relu(conv(x))
        return self.res_stack(self.conv_last(x))


class Decoder(nn.Module):
    def __init__(self, config: VQVAEConfig):
        super().__init__()
        n = config.n_hiddens
        strides = _halvings(config.downsample)
        self.res_stack = _residual_stack(config)
        self.convts = nn.ModuleList(
            SamePadConvTranspose3d(n, 3 if i == len(strides) - 1 else n, _kernel(4, config.per_frame), stride=s,
                                   causal=config.causal)
            for i, s in enumerate(strides))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.res_stack(x)
        for i, convt in enumerate(self.convts):
            x = convt(x)
            if i < len(self.convts) - 1:
                x = F.relu(x)
        return x


class VQVAE(PretrainedMixin, nn.Module):
    """video (B, 3, T, H, W) in [-0.5, 0.5] <-> codes (B, t, h, w) in [0, n_codes)."""

    config_class = VQVAEConfig
    model_kind = "vqvae"

    def __init__(self, config: VQVAEConfig | None = None, **kwargs):
        super().__init__()
        self.config = config = self.resolve_config(config, kwargs)
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.pre_vq_conv = SamePadConv3d(config.n_hiddens, config.embedding_dim, 1)
        self.post_vq_conv = SamePadConv3d(config.embedding_dim, config.n_hiddens, 1)
        self.codebook = FiniteScalarQuantizer(config.fsq_levels) if config.fsq_levels else \
            Codebook(config.n_codes, config.embedding_dim, config.ema_decay, config.commitment_cost)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return self.config.latent_shape

    @property
    def n_codes(self) -> int:
        return self.config.n_codes

    @property
    def embedding_dim(self) -> int:
        return self.config.embedding_dim

    def latent_shape_for(self, n_frames: int, height: int, width: int) -> tuple[int, int, int]:
        t, h, w = self.config.downsample
        return (n_frames // t, height // h, width // w)

    def check_video(self, video: torch.Tensor) -> None:
        if not isinstance(video, torch.Tensor) or video.dim() != 5 or video.shape[1] != 3:
            shape = tuple(video.shape) if isinstance(video, torch.Tensor) else type(video).__name__
            raise ValueError(f"video must be a tensor (B, 3, T, H, W), got {shape}")
        if not video.is_floating_point():
            raise ValueError(f"video must be float in [-0.5, 0.5] (uint8 / 255 - 0.5), got {video.dtype}")
        t, h, w = self.config.downsample
        if video.shape[2] % t or video.shape[3] % h or video.shape[4] % w:
            raise ValueError(f"video size (T, H, W) = {tuple(video.shape[2:])} must be divisible by the "
                             f"downsample factors {self.config.downsample}")
        low, high = video.min().item(), video.max().item()
        if low < -0.5 - 1e-3 or high > 0.5 + 1e-3:
            raise ValueError(f"video values must lie in [-0.5, 0.5] (uint8 / 255 - 0.5); got [{low:.3g}, "
                             f"{high:.3g}]")

    def check_codes(self, codes: torch.Tensor) -> None:
        if not isinstance(codes, torch.Tensor) or codes.dim() != 4 or codes.is_floating_point():
            shape = tuple(codes.shape) if isinstance(codes, torch.Tensor) else type(codes).__name__
            raise ValueError(f"codes must be an integer tensor (B, t, h, w), got {shape}")
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.n_codes):
            raise ValueError(f"codes must lie in [0, {self.n_codes}), got [{codes.min().item()}, "
                             f"{codes.max().item()}]")

    @contextmanager
    def _inference(self):
        """encode / decode use BatchNorm's running statistics and change no buffer, whatever the mode."""
        was_training = self.training
        self.eval()
        try:
            yield
        finally:
            self.train(was_training)

    def quantizer_input(self, video: torch.Tensor) -> torch.Tensor:
        return self.pre_vq_conv(self.encoder(video))

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """video (B, 3, T, H, W) in [-0.5, 0.5] -> codes (B, t, h, w) int64. Never updates the codebook."""
        self.check_video(video)
        with self._inference():
            z = self.quantizer_input(video)
        flat = z.movedim(1, -1).flatten(0, -2)
        return self.codebook.nearest(flat).view(z.shape[0], *z.shape[2:])

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, t, h, w) -> video (B, 3, T, H, W), roughly in [-0.5, 0.5] (not clamped)."""
        self.check_codes(codes)
        with self._inference():
            return self.decoder(self.post_vq_conv(self.codebook.lookup(codes.long())))

    def forward(self, video: torch.Tensor) -> dict[str, torch.Tensor]:
        """Training step: reconstruction, losses and codebook statistics."""
        self.check_video(video)
        vq = self.codebook(self.quantizer_input(video))
        recon = self.decoder(self.post_vq_conv(vq["quantized"]))
        recon_loss = F.mse_loss(recon, video) / self.config.recon_loss_scale
        return dict(
            recon=recon,
            loss=recon_loss + vq["commitment_loss"],
            recon_loss=recon_loss,
            commitment_loss=vq["commitment_loss"],
            perplexity=vq["perplexity"],
            usage=vq["usage"],
            codes=vq["codes"],
        )

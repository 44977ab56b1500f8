"""Int8 weights for the prior's decode step on a CPU (`quantize="int8"`).

At batch 1 a decode step mostly streams weights from memory, so a quarter of float32's bytes makes it
faster. Weight-only and symmetric, one scale per output channel: activations stay floating point (bfloat16
inside the product), which keeps the logits within about 2 % of float32 (tests/test_quantized_decode.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

QUANTIZE_MODES = ("int8",)


def check_quantize(quantize: str | None, device: str | torch.device) -> None:
    """Raise a ValueError unless `quantize` is None or a supported mode for `device`."""
    if quantize is None:
        return
    if quantize not in QUANTIZE_MODES:
        raise ValueError(f"quantize must be None (float weights) or one of {QUANTIZE_MODES}, got {quantize!r}")
    if not hasattr(torch, "_weight_int8pack_mm"):
        raise ValueError(f"quantize={quantize!r} needs torch._weight_int8pack_mm, which this torch "
                         f"({torch.__version__}) lacks: use quantize=None")
    if torch.device(device).type != "cpu":
        raise ValueError(f"quantize={quantize!r} is a CPU decode path (torch._weight_int8pack_mm); the model is on "
                         f"{torch.device(device)}: use quantize=None there")


@dataclass
class Int8Weight:
    """A linear layer's weight as int8 (out, in) with one scale per output channel (symmetric), for the
    decode step on a CPU: a quarter of float32's bytes, and the step is bound by reading weights."""

    values: torch.Tensor  # (out, in rounded up to a multiple of 16) int8; padding columns are zero
    scales: torch.Tensor  # (out,) bfloat16
    in_features: int

    # torch._weight_int8pack_mm's CPU kernel reads `in` in blocks of 16 (other sizes give wrong results or
    # crash), and is fast only for bfloat16 activations (float32 ones take a slow generic path).
    BLOCK = 16
    # Above this many rows (a prefill) a float GEMM of the dequantized weight is faster than the int8 kernel.
    KERNEL_MAX_ROWS = 64

    @classmethod
    def quantize(cls, weight: torch.Tensor) -> "Int8Weight":
        """weight (out, in), as nn.Linear holds it."""
        weight = weight.detach().float()
        # Round the scale to bfloat16 first, so the int8 values absorb its rounding; an all-zero row gets a
        # tiny scale instead of a division by zero.
        scales = (weight.abs().amax(dim=1).clamp_min(1e-12) / 127).to(torch.bfloat16)
        values = (weight / scales.float()[:, None]).round().clamp(-127, 127).to(torch.int8)
        padding = -weight.shape[1] % cls.BLOCK
        return cls(F.pad(values, (0, padding)).contiguous(), scales, weight.shape[1])

    @property
    def out_features(self) -> int:
        return self.values.shape[0]

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(out, in) float weight."""
        return self.values[:, : self.in_features].to(dtype) * self.scales.to(dtype)[:, None]

    def linear(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """x (rows, in) -> (rows, out) in x's dtype, as F.linear with the quantized weight."""
        if x.shape[0] > self.KERNEL_MAX_ROWS:
            return F.linear(x, self.dequantize(x.dtype), bias)
        padding = self.values.shape[1] - self.in_features
        x_bf16 = F.pad(x, (0, padding)).to(torch.bfloat16) if padding else x.to(torch.bfloat16)
        out = torch._weight_int8pack_mm(x_bf16.contiguous(), self.values, self.scales).to(x.dtype)
        return out if bias is None else out.add_(bias)

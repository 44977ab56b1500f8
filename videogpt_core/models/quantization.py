"""Linear layers in the decode step's weight layouts: float weights transposed, or int8 (`quantize="int8"`).

A decoding copy of the prior (videogpt_core.models.decoding) swaps each of its nn.Linear layers for one of these;
the training model keeps nn.Linear and its state-dict keys.

At batch 1 a decode step mostly streams weights from memory: `x @ W` with W stored (in, out) is about
twice as fast on a CPU as F.linear(x, W) for one token, and int8 weights read a quarter of float32's bytes.
Int8 is weight-only and symmetric, one scale per output channel: activations stay floating point (bfloat16
inside the product), which keeps the logits within about 2 % of float32 (tests/test_quantized_decode.py).
"""
from __future__ import annotations

import torch
import torch.nn as nn
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


def _bias_copy(bias: torch.Tensor | None) -> torch.Tensor | None:
    return None if bias is None else bias.detach().clone()


class TransposedLinear(nn.Module):
    """F.linear with the weight stored transposed (in, out), for matrix-vector products."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None):
        """weight (out, in) as nn.Linear holds it."""
        super().__init__()
        self.register_buffer("weight_t", weight.detach().t().contiguous())
        self.register_buffer("bias", _bias_copy(bias))

    @property
    def out_features(self) -> int:
        return self.weight_t.shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.weight_t, self.bias  # one module attribute lookup each: this runs per token
        flat = x.reshape(-1, x.shape[-1])
        out = flat @ weight if bias is None else torch.addmm(bias, flat, weight)
        return out.view(*x.shape[:-1], weight.shape[1])

    # Called straight, without nn.Module's hook dispatch: a decoding copy runs a few hundred of these per
    # token, where that dispatch measured several percent of an eager step. (No hooks on decode layers.)
    __call__ = forward


class Int8Linear(nn.Module):
    """F.linear with an int8 weight (out, in) and one bfloat16 scale per output channel (symmetric)."""

    # torch._weight_int8pack_mm's CPU kernel reads `in` in blocks of 16 (other sizes give wrong results or
    # crash), and is fast only for bfloat16 activations (float32 ones take a slow generic path).
    BLOCK = 16
    # Above this many rows (a prefill) a float GEMM of the dequantized weight is faster than the int8 kernel.
    KERNEL_MAX_ROWS = 64

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None):
        """weight (out, in) as nn.Linear holds it."""
        super().__init__()
        weight = weight.detach().float()
        # Round the scale to bfloat16 first, so the int8 values absorb its rounding; an all-zero row gets a
        # tiny scale instead of a division by zero.
        scales = (weight.abs().amax(dim=1).clamp_min(1e-12) / 127).to(torch.bfloat16)
        values = (weight / scales.float()[:, None]).round().clamp(-127, 127).to(torch.int8)
        padding = -weight.shape[1] % self.BLOCK
        self.register_buffer("values", F.pad(values, (0, padding)).contiguous())  # padding columns are zero
        self.register_buffer("scales", scales)
        self.register_buffer("bias", _bias_copy(bias))
        self.in_features = weight.shape[1]

    @property
    def out_features(self) -> int:
        return self.values.shape[0]

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(out, in) float weight."""
        return self.values[:, : self.in_features].to(dtype) * self.scales.to(dtype)[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., in) -> (..., out) in x's dtype."""
        flat = x.reshape(-1, x.shape[-1])
        if flat.shape[0] > self.KERNEL_MAX_ROWS:
            out = F.linear(flat, self.dequantize(x.dtype), self.bias)
        else:
            padding = self.values.shape[1] - self.in_features
            x_bf16 = F.pad(flat, (0, padding)).to(torch.bfloat16) if padding else flat.to(torch.bfloat16)
            out = torch._weight_int8pack_mm(x_bf16.contiguous(), self.values, self.scales).to(x.dtype)
            if self.bias is not None:
                out = out.add_(self.bias)
        return out.view(*x.shape[:-1], self.out_features)

    __call__ = forward  # as TransposedLinear


def decode_linear(weight: torch.Tensor, bias: torch.Tensor | None, quantize: str | None) -> nn.Module:
    """The decode-step layer computing F.linear(x, weight, bias): transposed float, or int8."""
    return TransposedLinear(weight, bias) if quantize is None else Int8Linear(weight, bias)

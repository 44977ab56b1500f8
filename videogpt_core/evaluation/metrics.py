"""Evaluation metrics: reconstruction quality (PSNR, SSIM, NMSE), prior quality (bits per token) and
codebook health. FVD and its Frechet distance live in videogpt_core/fvd."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

ArrayLike = torch.Tensor | np.ndarray


def _as_video_pair(a: ArrayLike, b: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Both inputs as float64 tensors (B, C, T, H, W) of the same shape."""
    a = torch.as_tensor(a).detach().to("cpu", torch.float64)
    b = torch.as_tensor(b).detach().to("cpu", torch.float64)
    if a.shape != b.shape:
        raise ValueError(f"videos must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.dim() != 5:
        raise ValueError(f"expected videos (B, C, T, H, W), got shape {tuple(a.shape)}")
    return a, b


def psnr_from_mse(mse: ArrayLike | float, data_range: float = 1.0) -> torch.Tensor:
    """PSNR in dB, elementwise, of mean squared errors on values spanning data_range (max - min): the one
    PSNR formula of the package. A zero MSE (identical frames) gives inf."""
    mse = mse if isinstance(mse, torch.Tensor) else torch.as_tensor(mse, dtype=torch.float64)
    return 10.0 * torch.log10(data_range**2 / mse)


def psnr_per_frame(a: ArrayLike, b: ArrayLike, data_range: float = 1.0) -> torch.Tensor:
    """PSNR of each frame index, averaged over the batch: a (T,) tensor in dB (for a per-frame plot).

    a, b: videos (B, C, T, H, W). data_range is max - min of the value range: 1.0 for both
    [-0.5, 0.5] and [0, 1] (PSNR does not depend on the offset). Identical frames give inf.
    """
    a, b = _as_video_pair(a, b)
    mse = (a - b).pow(2).mean(dim=(1, 3, 4))  # (B, T)
    return psnr_from_mse(mse, data_range).mean(dim=0)


def psnr(a: ArrayLike, b: ArrayLike, data_range: float = 1.0) -> float:
    """PSNR in dB of videos (B, C, T, H, W): the mean over frames and videos of per-frame PSNR."""
    return float(psnr_per_frame(a, b, data_range).mean())


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(
    a: ArrayLike,
    b: ArrayLike,
    value_range: tuple[float, float] = (-0.5, 0.5),
    window_size: int = 11,
    sigma: float = 1.5,
) -> float:
    """Structural similarity (Wang et al. 2004) of videos (B, C, T, H, W), averaged over frames,
    channels and videos.

    Standard settings: an 11x11 Gaussian window with sigma 1.5 ("valid" filtering, no padding),
    K1 = 0.01, K2 = 0.03 on values scaled to [0, 1]. value_range says what the inputs span:
    (-0.5, 0.5) for the model convention (the default), (0, 1) for [0, 1] videos, (0, 255) for
    uint8-valued ones. It matters because SSIM's luminance term depends on the absolute level.
    Frames must be at least window_size pixels on each side.
    """
    a, b = _as_video_pair(a, b)
    low, high = value_range
    if not high > low:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range}")
    B, C, T, H, W = a.shape
    if H < window_size or W < window_size:
        raise ValueError(f"SSIM needs frames of at least {window_size}x{window_size}, got {H}x{W}")
    # Frames as a batch of one-channel images, scaled to [0, 1].
    x = ((a - low) / (high - low)).permute(0, 2, 1, 3, 4).reshape(B * T * C, 1, H, W)
    y = ((b - low) / (high - low)).permute(0, 2, 1, 3, 4).reshape(B * T * C, 1, H, W)
    g = _gaussian_window(window_size, sigma)
    kernel_h, kernel_w = g.view(1, 1, -1, 1), g.view(1, 1, 1, -1)

    def blur(z: torch.Tensor) -> torch.Tensor:  # separable Gaussian filter, "valid" region only
        return F.conv2d(F.conv2d(z, kernel_h), kernel_w)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov_xy = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    return float(ssim_map.mean())


def nmse(recon: ArrayLike, target: ArrayLike, data_variance: float | None = None) -> float:
    """Normalized MSE as in the VideoGPT paper: MSE(recon, target) / variance of the data.

    data_variance defaults to the variance of `target` itself; pass the data set's variance
    (the reference code uses 0.06 for its [-0.5, 0.5] videos) to compare across batches.
    """
    recon = torch.as_tensor(recon).detach().to("cpu", torch.float64)
    target = torch.as_tensor(target).detach().to("cpu", torch.float64)
    if recon.shape != target.shape:
        raise ValueError(f"recon and target must have the same shape, got {tuple(recon.shape)} and "
                         f"{tuple(target.shape)}")
    variance = float(target.var(unbiased=False)) if data_variance is None else float(data_variance)
    if variance <= 0:
        raise ValueError("the data variance is zero (a constant target); pass data_variance explicitly")
    return float((recon - target).pow(2).mean()) / variance


def bits_per_token(nats: float | torch.Tensor) -> float | torch.Tensor:
    """Convert a cross-entropy in nats per token to bits per token (divide by ln 2)."""
    return nats / math.log(2)


def codebook_usage(codes: ArrayLike, n_codes: int) -> dict[str, float]:
    """How well a set of codes covers the codebook.

    Returns fraction_used (distinct codes seen / n_codes) and perplexity (exp of the entropy of
    the code histogram: n_codes when all are used equally, 1 when one code is used).
    """
    codes = torch.as_tensor(codes).detach().to("cpu").reshape(-1).long()
    if codes.numel() == 0:
        raise ValueError("codebook_usage needs at least one code")
    if int(codes.min()) < 0 or int(codes.max()) >= n_codes:
        raise ValueError(f"codes must lie in [0, {n_codes}), got values in [{int(codes.min())}, {int(codes.max())}]")
    counts = torch.bincount(codes, minlength=n_codes).double()
    probs = counts / counts.sum()
    nonzero = probs[probs > 0]
    entropy = float(-(nonzero * nonzero.log()).sum())
    return {"fraction_used": float((counts > 0).sum()) / n_codes, "perplexity": math.exp(entropy)}

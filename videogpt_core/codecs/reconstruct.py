"""Reconstruct one clip with one or more VQ-VAE codecs and measure each: PSNR (mean and per frame), SSIM, the
bits of its codes against the raw pixels, how many codebook entries the clip used, and the PSNR of keeping only
each latent block's mean colour (codec_baseline.py), the figure a codec has to beat.

A codec is a VQ-VAE folder (config.json + model.safetensors), a pipeline folder holding vqvae/, or a
training run folder holding model/. The VQ-VAEs are convolutional with axial attention and no position
encodings, so they run at any frame size their spatial downsampling divides (64 px models at 128 px too);
long clips go through window by window of the length each was trained on (inference/codec_windows.py).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from videogpt_core.codecs.codec_baseline import block_mean_bits, block_means
from videogpt_core.data.transforms import resize_center_crop, to_model_video
from videogpt_core.evaluation.metrics import psnr_per_frame, ssim
from videogpt_core.inference.codec_windows import reconstruct_in_windows
from videogpt_core.models.checkpoints import load_vqvae
from videogpt_core.models.model_folders import codec_folder, model_name
from videogpt_core.models.vqvae import VQVAE

MAX_FRAMES = 1000  # longer inputs are refused unless the caller picks a span or raises the cap
PSNR_CAP_DB = 100.0  # a frame reconstructed exactly has infinite PSNR; reported as this (JSON has no inf)
MIN_RESOLUTION, MAX_RESOLUTION = 16, 512


@dataclass
class Codec:
    name: str
    path: Path  # the VQ-VAE folder itself
    vqvae: VQVAE

    @property
    def downsample(self) -> tuple[int, int, int]:
        return tuple(self.vqvae.config.downsample)


@dataclass
class CodecResult:
    name: str
    checkpoint: str
    frames: np.ndarray  # uint8 (T, H, W, 3), the reconstruction of the clip's T frames
    codes: np.ndarray  # int64 (t, h, w)
    n_codes: int
    downsample: tuple[int, int, int]
    seconds: float
    psnr_per_frame: list[float] = field(default_factory=list)
    ssim: float = 0.0
    baseline_psnr_per_frame: list[float] = field(default_factory=list)  # each latent block's mean colour kept
    baseline_bits: int = 0

    @property
    def baseline_psnr(self) -> float:
        return float(np.mean(self.baseline_psnr_per_frame))

    @property
    def psnr(self) -> float:
        return float(np.mean(self.psnr_per_frame))

    @property
    def bits(self) -> float:
        """Bits to send this clip's codes with a fixed-length code: latents x log2(codebook size)."""
        return self.codes.size * math.log2(self.n_codes)

    @property
    def code_stability(self) -> float | None:
        """Share of latent positions whose code equals the one a latent slice earlier (None: one slice).

        On static content a stable codec repeats its codes; near-duplicate codes cost a prior bits."""
        if len(self.codes) < 2:
            return None
        return float(np.mean(self.codes[1:] == self.codes[:-1]))

    def summary(self, raw_bits: int) -> dict:
        return {
            "name": self.name, "checkpoint": self.checkpoint, "psnr": round(self.psnr, 3),
            "psnr_per_frame": [round(value, 3) for value in self.psnr_per_frame], "ssim": round(self.ssim, 4),
            "baseline_psnr": round(self.baseline_psnr, 3), "baseline_bits": self.baseline_bits,
            "bits": round(self.bits, 1), "raw_bits": raw_bits, "compression_ratio": round(raw_bits / self.bits, 2),
            "codebook_usage": int(np.unique(self.codes).size), "n_codes": self.n_codes,
            "codebook_fraction": round(np.unique(self.codes).size / self.n_codes, 4),
            "latent_shape": list(self.codes.shape), "downsample": list(self.downsample),
            "code_stability": None if self.code_stability is None else round(self.code_stability, 4),
            "seconds": round(self.seconds, 3),
        }


def load_codec(folder: str | os.PathLike, device: str | torch.device = "cpu") -> Codec:
    """The VQ-VAE of a VQ-VAE folder, a pipeline folder (vqvae/) or a training run folder (model/)."""
    return Codec(name=model_name(folder), path=codec_folder(folder), vqvae=load_vqvae(folder, device))


def check_resolution(resolution: int, codecs: list[Codec]) -> int:
    """`resolution` if every codec's spatial downsampling divides it, else a ValueError naming a size that works."""
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)):
        raise ValueError(f"resolution must be a whole number of pixels, got {resolution!r}")
    if not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise ValueError(f"resolution must be between {MIN_RESOLUTION} and {MAX_RESOLUTION} pixels, got {resolution}")
    step = math.lcm(*(max(codec.downsample[1:]) for codec in codecs), *(min(codec.downsample[1:]) for codec in codecs))
    if resolution % step:
        raise ValueError(f"resolution {resolution} is not a multiple of {step}, which the codecs' spatial "
                         f"downsampling needs; try {max(step, resolution // step * step)} (e.g. 64 or 128)")
    return int(resolution)


def prepare_clip(frames: np.ndarray, resolution: int) -> np.ndarray:
    """uint8 video (T, H, W, 3) of any size -> (T, resolution, resolution, 3), resized and centre-cropped."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 RGB frames (T, H, W, 3); got {frames.dtype} {frames.shape}")
    if len(frames) < 2:
        raise ValueError(f"a video needs at least 2 frames to reconstruct; got {len(frames)} "
                         "(for a still image, repeat it or use a video file)")
    if min(frames.shape[1:3]) < 2:
        raise ValueError(f"frames of {frames.shape[2]}x{frames.shape[1]} pixels are too small to reconstruct")
    return resize_center_crop(frames, resolution)


def _psnr_per_frame(original: np.ndarray, reconstruction: np.ndarray) -> list[float]:
    """PSNR (dB) of each frame of one uint8 clip (T, H, W, 3), capped at PSNR_CAP_DB."""
    def as_video(clip: np.ndarray) -> torch.Tensor:  # (T, H, W, 3) -> (1, 3, T, H, W), values 0..255
        return torch.from_numpy(np.ascontiguousarray(clip)).permute(3, 0, 1, 2)[None]

    values = psnr_per_frame(as_video(original), as_video(reconstruction), data_range=255.0)
    return [min(float(value), PSNR_CAP_DB) for value in values]


def reconstruct_clip(codec: Codec, clip: np.ndarray, device: str | torch.device = "cpu") -> CodecResult:
    """The codec's reconstruction of `clip` (uint8 (T, R, R, 3), prepared) and its scores."""
    fpl = codec.downsample[0]
    total = len(clip)
    padded = clip if total % fpl == 0 else np.concatenate([clip, np.repeat(clip[-1:], fpl - total % fpl, axis=0)])
    video = to_model_video(padded)[None].to(device)
    started = time.perf_counter()
    frames, codes = reconstruct_in_windows(codec.vqvae.to(device), video)
    seconds = time.perf_counter() - started
    frames = frames[0, :total]
    result = CodecResult(name=codec.name, checkpoint=str(codec.path), frames=frames, codes=codes[0].numpy(),
                         n_codes=codec.vqvae.n_codes, downsample=codec.downsample, seconds=seconds)
    result.psnr_per_frame = _psnr_per_frame(clip, frames)
    result.baseline_psnr_per_frame = _psnr_per_frame(clip, block_means(clip, codec.downsample))
    result.baseline_bits = block_mean_bits(clip, codec.downsample)
    result.ssim = ssim(to_model_video(clip)[None], to_model_video(frames)[None])
    return result


def compare_codecs(codecs: list[Codec], frames: np.ndarray, resolution: int,
                   device: str | torch.device = "cpu") -> tuple[np.ndarray, list[CodecResult], dict]:
    """The prepared clip, each codec's result, and the JSON-ready report of all of them."""
    if not codecs:
        raise ValueError("give at least one codec (--checkpoint)")
    resolution = check_resolution(resolution, codecs)
    clip = prepare_clip(frames, resolution)
    results = [reconstruct_clip(codec, clip, device) for codec in codecs]
    raw_bits = int(clip.size * 8)
    report = {"frames": int(len(clip)), "resolution": resolution, "raw_bits": raw_bits,
              "codecs": [result.summary(raw_bits) for result in results]}
    return clip, results, report

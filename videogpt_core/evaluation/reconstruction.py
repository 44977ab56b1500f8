"""`videogpt eval --what recon`: how well the VQ-VAE reproduces held-out clips (NMSE as the paper, PSNR,
SSIM), beside the block-mean baseline of its latent grid, and how much of its codebook they use."""
from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

from videogpt_core.codecs.codec_baseline import block_means
from videogpt_core.data.transforms import from_model_video, to_model_video
from videogpt_core.evaluation.clips import batches
from videogpt_core.evaluation.metrics import codebook_usage, psnr_per_frame, ssim
from videogpt_core.models.vqvae import VQVAE

SSIM_WINDOW = 11  # metrics.ssim's Gaussian window: smaller frames have no SSIM


@torch.no_grad()
def reconstruction_scores(vqvae: VQVAE, dataset: Dataset, n_clips: int, batch_size: int,
                          device: torch.device, progress: bool = False) -> dict[str, Any]:
    """NMSE (MSE / variance of the evaluated data, as the paper), PSNR (mean per-frame, dB), SSIM and codebook
    usage of encode -> decode over the first n_clips clips, and the PSNR of keeping each latent block's mean
    colour instead (codec_baseline). Reconstructions are clamped to the pixel range."""
    squared_error = pixel_sum = pixel_square_sum = 0.0
    n_values = clips = 0
    psnr_sum, ssim_sum, baseline_psnr_sum = 0.0, 0.0, 0.0
    all_codes = []
    resolution = None
    for batch in batches(dataset, n_clips, batch_size, "reconstruction", progress):
        video = batch["video"].to(device)
        codes = vqvae.encode(video)
        recon = vqvae.decode(codes).float().clamp(-0.5, 0.5)
        # The data variance is over the evaluated clips themselves, accumulated in float64.
        video64, recon64 = video.double(), recon.double()
        squared_error += float((recon64 - video64).pow(2).sum())
        pixel_sum += float(video64.sum())
        pixel_square_sum += float(video64.pow(2).sum())
        n_values += video64.numel()
        n = video.shape[0]
        psnr_sum += float(psnr_per_frame(recon, video).mean()) * n
        baseline = torch.stack([to_model_video(block_means(clip, vqvae.config.downsample))
                                for clip in from_model_video(video)])
        baseline_psnr_sum += float(psnr_per_frame(baseline.to(video.device), video).mean()) * n
        resolution = min(video.shape[-2:])
        if resolution >= SSIM_WINDOW:
            ssim_sum += ssim(recon, video) * n
        clips += n
        all_codes.append(codes.cpu())
    mse = squared_error / n_values
    variance = pixel_square_sum / n_values - (pixel_sum / n_values) ** 2
    codes = torch.cat(all_codes)
    usage = codebook_usage(codes, vqvae.n_codes)
    used = int(torch.unique(codes).numel())
    return {
        "clips": clips,
        "nmse": mse / variance if variance > 0 else None,
        "mse": mse,
        "data_variance": variance,
        "psnr": psnr_sum / clips,
        "baseline_psnr": baseline_psnr_sum / clips,  # each latent block's mean colour kept (24 bits a block)
        "ssim": ssim_sum / clips if resolution >= SSIM_WINDOW else None,
        "codebook_fraction_used": usage["fraction_used"],
        "codebook_perplexity": usage["perplexity"],
        "codes_used": used,
        "dead_codes": vqvae.n_codes - used,  # codes no evaluated clip used
        "n_codes": vqvae.n_codes,
    }

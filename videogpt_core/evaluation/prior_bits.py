"""`videogpt eval --what prior`: the prior's cross-entropy, in nats and bits per latent token, on the VQ-VAE
codes of held-out clips given each clip's own conditions."""
from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

from videogpt_core.evaluation.clips import batches
from videogpt_core.evaluation.metrics import bits_per_token
from videogpt_core.models.conditions import Conditions
from videogpt_core.models.prior import VideoGPT
from videogpt_core.models.vqvae import VQVAE


@torch.no_grad()
def prior_scores(vqvae: VQVAE, prior: VideoGPT, dataset: Dataset, n_clips: int, batch_size: int,
                 device: torch.device, progress: bool = False) -> dict[str, Any]:
    """Cross-entropy of the prior on the VQ-VAE codes of held-out clips, given the clips' own conditions."""
    nats_sum, clips = 0.0, 0
    for batch in batches(dataset, n_clips, batch_size, "prior", progress):
        video = batch["video"].to(device)
        codes = vqvae.encode(video)
        loss = prior.loss(codes, **Conditions.from_batch(prior.config, batch, device).tensors())["loss"]
        nats_sum += float(loss) * video.shape[0]
        clips += video.shape[0]
    nats = nats_sum / clips
    return {"clips": clips, "tokens": clips * prior.config.seq_len, "nats_per_token": nats,
            "bits_per_token": bits_per_token(nats)}

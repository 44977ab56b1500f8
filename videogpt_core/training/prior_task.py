"""Stage 2 as a TrainingTask: the prior models a frozen VQ-VAE's codes."""
from __future__ import annotations

import torch
import torch.nn as nn

from videogpt_core.models.checkpoints import save_pipeline
from videogpt_core.models.conditions import Conditions
from videogpt_core.models.config import config_to_dict
from videogpt_core.training.media import MEDIA_VIDEOS, write_video_summary
from videogpt_core.training.task import TrainingTask


class PriorTask(TrainingTask):
    """Batches hold "codes" (B, t, h, w) and, when the prior is conditional, "frames" (B, 3, K, H, W),
    "label" (B,) and / or "actions" (B, T, A)."""

    kind = "prior"

    def __init__(self, model: nn.Module, vqvae: nn.Module, vqvae_path: str | None = None,
                 context_noise: float = 0.0, context_noise_from: str = "random"):
        """context_noise, context_noise_from: see VideoGPT.loss; training batches only (validation scores clean
        contexts)."""
        super().__init__(model)
        self.vqvae = vqvae.eval()  # frozen: only exported beside the prior and used for media
        self.vqvae_path = vqvae_path
        self.context_noise = context_noise
        self.context_noise_from = context_noise_from

    def loss(self, model, batch):
        noise = self.context_noise if model.training else 0.0
        return model.loss(batch["codes"], context_noise=noise, context_noise_from=self.context_noise_from,
                          **Conditions.from_batch(model.config, batch).tensors())

    def describe(self):
        return {"kind": self.kind, "prior_config": config_to_dict(self.model.config), "vqvae": self.vqvae_path,
                "context_noise": self.context_noise, "context_noise_from": self.context_noise_from}

    def export(self, model, directory):
        save_pipeline(directory, self.vqvae, model)

    @torch.no_grad()
    def log_media(self, model, batch, writer, step):
        # Teacher-forced greedy predictions, decoded beside the true codes: cheap (one forward pass)
        # and shows what the prior has learned without a full autoregressive sample.
        codes = batch["codes"][:MEDIA_VIDEOS]
        conditions = {k: v[:MEDIA_VIDEOS] for k, v in Conditions.from_batch(model.config, batch).tensors().items()}
        predicted = model(codes, **conditions).argmax(-1)
        self.vqvae.to(codes.device)
        truth = self.vqvae.decode(codes).float().clamp(-0.5, 0.5)
        guess = self.vqvae.decode(predicted).float().clamp(-0.5, 0.5)
        write_video_summary(writer, "codes_vs_teacher_forced_prediction", torch.cat([truth, guess], dim=-1), step)

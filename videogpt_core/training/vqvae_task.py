"""Stage 1 as a TrainingTask: the VQ-VAE reconstructs videos."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from videogpt_core.evaluation.metrics import psnr_from_mse
from videogpt_core.models.config import config_to_dict
from videogpt_core.training.exposure_jitter import with_random_exposure
from videogpt_core.training.media import MEDIA_VIDEOS, write_video_summary
from videogpt_core.training.task import TrainingTask


class VQVAETask(TrainingTask):
    """Batches hold "video" (B, 3, T, H, W) in [-0.5, 0.5].

    decoder_only: the encoder and codebook are frozen and run as at inference, so every clip keeps the codes it
    had; only the decoder learns. A prior trained on those codes stays valid while its codec's decoder improves.
    exposure_jitter: the share of training clips made dim or flat (exposure_jitter.py) before the model sees
    them; validation scores the clips as they are.
    """

    kind = "vqvae"

    def __init__(self, model: nn.Module, decoder_only: bool = False, exposure_jitter: float = 0.0):
        super().__init__(model)
        self.decoder_only = decoder_only
        self.exposure_jitter = exposure_jitter
        if decoder_only:
            for module in (model.encoder, model.pre_vq_conv, model.codebook):
                module.requires_grad_(False)

    def loss(self, model, batch):
        video = batch["video"]
        if model.training and self.exposure_jitter:
            video = with_random_exposure(video, self.exposure_jitter)
        if not self.decoder_only:
            return model(video)
        codes = model.encode(video)  # BatchNorm's running statistics, the codebook unchanged
        recon = model.decoder(model.post_vq_conv(model.codebook.lookup(codes)))
        recon_loss = F.mse_loss(recon, video) / model.config.recon_loss_scale
        return {"recon": recon, "loss": recon_loss, "recon_loss": recon_loss}

    def describe(self):
        return {"kind": self.kind, "vqvae_config": config_to_dict(self.model.config),
                "decoder_only": self.decoder_only, "exposure_jitter": self.exposure_jitter}

    def export(self, model, directory):
        model.save_pretrained(directory)

    def prepare_model(self, model, distributed, device):
        # BatchNorm statistics over the global batch, as the reference trains; CPU (gloo) has no SyncBatchNorm.
        if distributed and device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return model

    def eval_metrics(self, model, batch, out):
        video, recon = batch["video"].float(), out["recon"].float().clamp(-0.5, 0.5)
        mse = (recon - video).pow(2).mean(dim=(1, 3, 4))  # (B, T): PSNR per frame, as metrics.psnr
        return {"psnr": psnr_from_mse(mse.clamp_min(1e-10)).mean()}

    @torch.no_grad()
    def log_media(self, model, batch, writer, step):
        video = batch["video"][:MEDIA_VIDEOS]
        recon = model(video)["recon"].float().clamp(-0.5, 0.5)
        side_by_side = torch.cat([video.float(), recon], dim=-1)  # original | reconstruction, (B, 3, T, H, 2W)
        write_video_summary(writer, "reconstruction", side_by_side, step)

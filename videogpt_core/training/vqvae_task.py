"""Stage 1 as a TrainingTask: the VQ-VAE reconstructs videos."""
from __future__ import annotations

import torch
import torch.nn as nn

from videogpt_core.config import config_to_dict
from videogpt_core.metrics import psnr_from_mse
from videogpt_core.training.media import MEDIA_VIDEOS, write_video_summary
from videogpt_core.training.task import TrainingTask


class VQVAETask(TrainingTask):
    """Batches hold "video" (B, 3, T, H, W) in [-0.5, 0.5]."""

    kind = "vqvae"

    def loss(self, model, batch):
        return model(batch["video"])

    def describe(self):
        return {"kind": self.kind, "vqvae_config": config_to_dict(self.model.config)}

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

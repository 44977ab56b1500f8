"""Tiny random VQ-VAEs, priors and pipelines for the sampling and pipeline tests (CPU, milliseconds each).

Priors get random non-zero weights everywhere (the constructor zeroes fc_out and the conditional norms),
so their logits differ from position to position and condition to condition.
"""
from __future__ import annotations

import dataclasses

import torch

from videogpt_core.inference.pipeline import VideoGPTPipeline
from videogpt_core.models.prior import VideoGPT
from videogpt_core.models.vqvae import VQVAE

# 4 frames of 16x16 -> a (2, 4, 4) grid of 16 codes: 32 tokens, 2 frames per latent slice.
TINY_VQVAE = dict(embedding_dim=8, n_codes=16, n_hiddens=16, n_res_layers=1, downsample=(2, 4, 4),
                  sequence_length=4, resolution=16, n_attn_heads=2)
# Three latent slices (6 frames) so a window keeps two slices when it slides.
LONGER_VQVAE = dict(TINY_VQVAE, sequence_length=6)
TINY_PRIOR = dict(hidden_dim=24, n_heads=2, n_layers=2, dropout=0.0, attn_dropout=0.0)
TINY_FRAME_ENCODER = dict(frame_encoder_widths=(8, 8, 8, 12), frame_encoder_blocks=(1, 1, 1, 1))

CONDITIONINGS = {
    "none": {},
    "class": dict(n_classes=3, class_names=["walk", "run", "jump"]),
    "actions": dict(action_dim=2, action_embed_dim=6),
    "frames": dict(n_cond_frames=1, **TINY_FRAME_ENCODER),
    "all": dict(n_classes=3, class_names=["walk", "run", "jump"], action_dim=2, action_embed_dim=6,
                n_cond_frames=1, **TINY_FRAME_ENCODER),
}


def tiny_vqvae(seed: int = 0, **overrides) -> VQVAE:
    """A VQ-VAE in eval mode whose codebook was trained once (one train-mode forward on random video)."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # the codebook's data-dependent init draws from the global generator
    vqvae = VQVAE(**{**TINY_VQVAE, **overrides})
    cfg = vqvae.config
    video = torch.rand(4, 3, cfg.sequence_length, cfg.resolution, cfg.resolution, generator=generator) - 0.5
    vqvae.train()
    with torch.no_grad():
        vqvae(video)
    return vqvae.eval()


def randomize(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Overwrite every parameter with seeded noise of a sensible scale (1/sqrt(fan-in) for weights)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            std = parameter[0].numel() ** -0.5 if parameter.dim() >= 2 else 0.3
            noise = torch.randn(parameter.shape, generator=generator) * std
            # Norm gains stay near one, so no layer's output collapses towards zero.
            gain = name.endswith(".g") or (name.endswith(".weight") and parameter.dim() == 1)
            parameter.copy_(noise + 1.0 if gain else noise)
    return module


def tiny_prior(vqvae: VQVAE, conditioning: str = "none", seed: int = 1, **overrides) -> VideoGPT:
    prior = VideoGPT.for_vqvae(vqvae, **{**TINY_PRIOR, **CONDITIONINGS[conditioning], **overrides})
    return randomize(prior, seed).eval()


def unconditional_twin(prior: VideoGPT) -> VideoGPT:
    """The same network with its class / action conditioning removed: what an all-zero condition vector
    computes (conditional norms with g = 1 + w(0) = 1, b = wb(0) = 0)."""
    config = dataclasses.replace(prior.config, n_classes=0, class_names=None, action_dim=0)
    twin = VideoGPT(config=config)
    own = twin.state_dict()
    shared = {k: v for k, v in prior.state_dict().items() if k in own and own[k].shape == v.shape}
    missing = set(own) - set(shared)
    # Only the plain norms' g (ones) and b (zeros) are new, and their initial values are what we want.
    assert all(k.endswith((".g", ".b")) for k in missing), missing
    twin.load_state_dict(shared, strict=False)
    return twin.eval()


def tiny_pipeline(conditioning: str = "none", seed: int = 0, vqvae_overrides: dict | None = None,
                  **prior_overrides) -> VideoGPTPipeline:
    vqvae = tiny_vqvae(seed, **(vqvae_overrides or {}))
    prior = tiny_prior(vqvae, conditioning, seed + 1, **prior_overrides)
    return VideoGPTPipeline(vqvae, prior, device="cpu", vqvae_bf16=False)


def random_inputs(prior: VideoGPT, batch: int, seed: int = 2) -> dict:
    """Keyword arguments (frames / labels / actions) that `prior` needs, random but seeded."""
    cfg = prior.config
    generator = torch.Generator().manual_seed(seed)
    inputs = {}
    if cfg.n_cond_frames:
        inputs["frames"] = torch.rand(batch, 3, cfg.n_cond_frames, cfg.resolution, cfg.resolution,
                                      generator=generator) - 0.5
    if cfg.n_classes:
        inputs["labels"] = torch.randint(0, cfg.n_classes, (batch,), generator=generator)
    if cfg.action_dim:
        inputs["actions"] = torch.randn(batch, cfg.sequence_length, cfg.action_dim, generator=generator)
    return inputs


def greedy_codes(prior: VideoGPT, batch: int, prefix: torch.Tensor | None = None, **inputs) -> torch.Tensor:
    """Greedy decoding by the teacher-forced forward only (no cache): argmax at each position in turn."""
    t, h, w = prior.latent_shape
    length = t * h * w
    codes = torch.zeros(batch, length, dtype=torch.long)
    start = 0
    if prefix is not None:
        start = prefix.shape[1]
        codes[:, :start] = prefix
    with torch.no_grad():
        for position in range(start, length):
            logits = prior(codes.view(batch, t, h, w), **inputs).flatten(1, 3)
            codes[:, position] = logits[:, position].argmax(-1)
    return codes.view(batch, t, h, w)

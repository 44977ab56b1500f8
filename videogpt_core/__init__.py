"""VideoGPT: a VQ-VAE video codec and a conditional GPT prior over its codes (Yan et al., ICCV 2021)."""
from videogpt_core.config import VideoGPTConfig, VQVAEConfig
from videogpt_core.prior import VideoGPT
from videogpt_core.vqvae import VQVAE

__all__ = ["VQVAE", "VQVAEConfig", "VideoGPT", "VideoGPTConfig"]

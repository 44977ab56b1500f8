"""VideoGPT: a VQ-VAE video codec and a conditional GPT prior over its codes (Yan et al., ICCV 2021)."""
from videogpt_core.models.config import VideoGPTConfig, VQVAEConfig
from videogpt_core.models.prior import VideoGPT
from videogpt_core.models.vqvae import VQVAE

__all__ = ["VQVAE", "VQVAEConfig", "VideoGPT", "VideoGPTConfig", "VideoGPTPipeline", "load_pipeline"]


def __getattr__(name: str):
    # The pipeline pulls in image/video processing (OpenCV); load it only when asked for.
    if name in ("load_pipeline", "VideoGPTPipeline"):
        from videogpt_core.inference import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'videogpt_core' has no attribute {name!r}")

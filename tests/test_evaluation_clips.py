"""The clips evaluation scores: samples drawn one per row under each row's conditions (FVD and the world
scores compare them with the real clips)."""
import torch

import videogpt_core.evaluation.clips as clips_module
from tiny_models import LONGER_VQVAE, tiny_pipeline
from videogpt_core.inference.sampling_options import SamplingOptions


def test_a_code_prefix_is_encoded_in_a_whole_window(monkeypatch):
    # Frames encoded alone get other codes than inside a clip: eval samples continue what the pipeline's
    # video prediction continues.
    pipeline = tiny_pipeline("class", seed=2, vqvae_overrides=LONGER_VQVAE)  # a VQ-VAE using several codes
    fpl = pipeline.config.frames_per_latent
    video = torch.rand(2, 3, fpl, pipeline.resolution, pipeline.resolution, generator=torch.Generator().manual_seed(0))
    alone = pipeline.vqvae.encode(video - 0.5)[:, :1].flatten(1)
    seen = []
    real_generate_codes = clips_module.generate_codes

    def spy(prior, batch, conditions, **kwargs):
        seen.append(conditions.prefix)
        return real_generate_codes(prior, batch, conditions, **kwargs)

    monkeypatch.setattr(clips_module, "generate_codes", spy)
    clips = clips_module.sample_clips(pipeline, 2, SamplingOptions(), torch.Generator().manual_seed(1),
                                      labels=torch.tensor([0, 1]), prefix_video=video - 0.5)
    assert clips.shape == (2, pipeline.sequence_length, pipeline.resolution, pipeline.resolution, 3)
    assert torch.equal(seen[0], pipeline.encode_prefix(video - 0.5, 1).flatten(1))
    assert not torch.equal(seen[0], alone)  # the frames encoded alone: what would be wrong


def test_first_frames_condition_as_the_pipeline_uses_the_frames():
    """Evaluation conditions on the first frames as generate() does with them: cross-attended when the prior
    takes frames, and as a code prefix when they fill whole latent slices (one frame per slice: both)."""
    import numpy as np

    clips = np.random.default_rng(0).integers(0, 256, (2, 4, 16, 16, 3), dtype=np.uint8)
    cases = (("frames", {}, {"frames"}),  # 2 frames per slice, 1 conditioning frame: cross-attention only
             ("none", {}, {"prefix_video"}),  # no cross-attention: the first slice's frames as codes
             ("frames", dict(downsample=(1, 4, 4), causal=True), {"frames", "prefix_video"}))
    for conditioning, vqvae_overrides, expected in cases:
        config = tiny_pipeline(conditioning, vqvae_overrides=vqvae_overrides).config
        condition, description = clips_module.first_frames_condition(config, clips, torch.device("cpu"), "x")
        assert set(condition) == expected, (conditioning, vqvae_overrides)
        if "prefix_video" in condition:
            assert condition["prefix_video"].shape[2] == config.frames_per_latent
            assert "code prefix" in description

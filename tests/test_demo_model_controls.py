"""demo/model_controls.py: the Generate controls follow the chosen model's conditioning; example frames."""
from __future__ import annotations

import os

from demo_helpers import WINDOW

from demo.examples import example_frames, example_videos
from demo.model_controls import DEFAULT_GUIDANCE, example_path, model_controls


def test_model_controls_follow_the_conditioning(registry):
    pusher = model_controls(registry, "pusher-tiny")
    assert pusher.start_image_visible and "required" in pusher.start_image_label
    assert pusher.action_dim == 2 and pusher.actions.shape == (WINDOW, 2) and not pusher.class_names
    assert not pusher.guidance_visible  # trained without condition dropout: no unconditional branch
    digits = model_controls(registry, "digits-tiny")
    assert digits.guidance_visible and digits.guidance == DEFAULT_GUIDANCE and pusher.guidance == 1.0
    assert digits.class_names == ["zero", "one", "two"] and digits.actions is None
    assert "optional" in digits.start_image_label
    uncond = model_controls(registry, "uncond-tiny")
    assert not uncond.guidance_visible and uncond.max_frames == 4 * WINDOW


def test_example_assets_exist_and_are_small():
    frames, videos = example_frames(), example_videos()
    assert len(frames) >= 4 and len(videos) >= 2
    total = sum(os.path.getsize(p) for p, _ in frames) + sum(os.path.getsize(p) for p in videos)
    assert total < 2 * 1024 * 1024
    assert example_path(frames, 1) == frames[1][0]
    assert example_path(frames, None, frames[2][1]) == frames[2][0]


def test_the_first_frame_label_says_whether_frame_1_is_kept(tmp_path):
    """A time-causal per-frame world model keeps the given frame as frame 1; the shipped kind draws it anew."""
    from tiny_models import tiny_prior, tiny_vqvae

    from demo.model_registry import ModelRegistry
    from videogpt_core.models.checkpoints import save_pipeline

    for name, vqvae_overrides in (("kept-tiny", dict(downsample=(1, 4, 4), causal=True)),
                                  ("redrawn-tiny", {})):
        vqvae = tiny_vqvae(sequence_length=WINDOW, **vqvae_overrides)
        save_pipeline(tmp_path / name, vqvae, tiny_prior(vqvae, "actions"))
    registry = ModelRegistry.from_paths([tmp_path], device="cpu")
    kept = model_controls(registry, "kept-tiny")
    assert registry.info("kept-tiny").keeps_start_frame and kept.start_image_visible
    assert "frame 1 of the video is this frame" in kept.start_image_label
    redrawn = model_controls(registry, "redrawn-tiny")
    assert not registry.info("redrawn-tiny").keeps_start_frame
    assert "frame 1 of the video is this frame" not in redrawn.start_image_label

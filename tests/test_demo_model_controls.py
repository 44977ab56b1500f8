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

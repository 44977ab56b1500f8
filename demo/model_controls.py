"""The Generate controls that depend on the chosen model: which inputs show, their labels, default actions,
guidance and frame limits, and the example frames of the model's world."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from demo.action_presets import default_preset, preset_actions, presets_for
from demo.examples import example_frames
from demo.model_registry import NO_MODEL_MESSAGE, ModelInfo, ModelRegistry

DEFAULT_GUIDANCE = 2.0  # for models trained with condition dropout: digits samples 96% on-class vs 89% at 1


def examples_for_model(info: ModelInfo | None) -> list[tuple[str, str]]:
    """Example frames of the world the model's name mentions (e.g. 'pusher'): another world's frame would be
    taken silently as this model's start image. A model named after no world gets none."""
    examples = example_frames()
    if info is None:
        return examples
    name = info.name.lower()
    return [item for item in examples if item[1].split()[0] in name]


@dataclass
class ModelControls:
    """The Generate controls that depend on the chosen model."""

    summary: str
    start_image_visible: bool
    start_image_label: str
    class_names: list[str]
    action_dim: int
    actions: np.ndarray | None
    guidance_visible: bool
    n_frames: int
    max_frames: int
    examples: list[tuple[str, str]]
    guidance: float = 1.0  # the slider's starting value (1 = off)
    world: str | None = None
    presets: tuple[str, ...] = presets_for(None)


def model_controls(registry: ModelRegistry, name: str | None) -> ModelControls:
    if not registry.names:
        return ModelControls(NO_MODEL_MESSAGE, False, "First frame", [], 0, None, False, 16, 64, example_frames())
    info = registry.info(name)
    t, h, w = info.latent_shape
    summary = (f"**{info.name}** conditions on {info.conditioning()} · {info.sequence_length} frames of "
               f"{info.resolution}×{info.resolution} per window → {t}×{h}×{w} codes of {info.n_codes}")
    if info.keeps_start_frame:
        image_label = ("First frame (" + ("required" if info.needs_frames else "optional: without one the model "
                       "imagines it") + "; any image, resized and center-cropped): frame 1 of the video is this "
                       "frame as the codec reproduces it")
    elif info.needs_frames:
        image_label = ("First frame (required: any image, resized and center-cropped): the model starts from what "
                       "it sees there and draws frame 1 anew, so frame 1 resembles it but is not a copy")
    else:
        image_label = (f"Start image (optional: held still for the first {info.frames_per_latent} frames, "
                       "the model continues from there)")
    return ModelControls(
        summary=summary,
        start_image_visible=info.takes_start_image,
        start_image_label=image_label,
        class_names=info.class_names,
        action_dim=info.action_dim,
        actions=(preset_actions(default_preset(info.world), info.sequence_length, info.action_dim, world=info.world,
                                action_range=info.prior_config.action_range) if info.action_dim else None),
        guidance_visible=info.guidance_possible,
        guidance=DEFAULT_GUIDANCE if info.guidance_possible else 1.0,
        n_frames=info.sequence_length,
        max_frames=info.max_frames,
        examples=examples_for_model(info),
        world=info.world,
        presets=presets_for(info.world),
    )


def example_path(examples: list[tuple[str, str]], index: int | None, caption: str | None = None) -> str | None:
    """The example frame that a gallery click picked (by caption, else by position)."""
    for path, text in examples:
        if caption is not None and text == caption:
            return path
    if index is not None and 0 <= int(index) < len(examples):
        return examples[int(index)][0]
    return None

"""The Generate tab's sampling settings: one slider per SamplingOptions knob, and the options their values make.

A knob's control is one entry of CONTROLS: its slider, the slider value that means "off" (None) and what it
shows for each model. The values travel as one list (`*sampling`, after the other inputs) to generation.py.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import gradio as gr

from demo.input_checks import real_number
from demo.model_controls import ModelControls
from demo.model_registry import ModelInfo
from videogpt_core.inference.sampling_options import SamplingOptions


@dataclass(frozen=True)
class SamplingControl:
    name: str  # the SamplingOptions field
    label: str
    low: float
    high: float
    step: float
    value: float
    off: float | None = None  # the slider value that means None (the knob is off)
    # What the slider shows for a model: gr.Slider / gr.update keywords (a bound, its visibility, its start).
    for_model: Callable[[ModelInfo | None, ModelControls], dict] = field(default=lambda info, controls: {})


CONTROLS: tuple[SamplingControl, ...] = (
    SamplingControl("temperature", "Temperature", 0.05, 2.0, 0.05, 1.0),
    SamplingControl("top_k", "Top-k (0 = off)", 0, 2048, 1, 0, off=0,
                    for_model=lambda info, c: {} if info is None else dict(maximum=info.n_codes)),
    SamplingControl("top_p", "Top-p (1 = off)", 0.01, 1.0, 0.01, 1.0),
    SamplingControl("cfg_scale", "Classifier-free guidance scale (1 = off)", 0.0, 5.0, 0.1, 1.0, off=1.0,
                    for_model=lambda info, c: dict(visible=c.guidance_visible, value=c.guidance)),
    SamplingControl("repetition_penalty", "Repetition penalty (1 = off)", 0.5, 2.0, 0.05, 1.0, off=1.0),
)


def sampling_sliders(info: ModelInfo | None, controls: ModelControls, most_codes: int) -> list[gr.Slider]:
    """The sliders, in CONTROLS order, set for the first model; server-side bounds admit every model's values."""
    sliders = []
    for control in CONTROLS:
        shown = control.for_model(info, controls)
        high = most_codes if control.name == "top_k" else control.high
        sliders.append(gr.Slider(control.low, high, value=shown.get("value", control.value), step=control.step,
                                 label=control.label, visible=shown.get("visible", True)))
    return sliders


def slider_updates(info: ModelInfo | None, controls: ModelControls) -> list:
    """What each slider shows once a model is picked (gr.update per slider, CONTROLS order)."""
    return [gr.update(**control.for_model(info, controls)) for control in CONTROLS]


def sampling_options(values: Sequence) -> SamplingOptions:
    """Slider values (CONTROLS order; missing trailing ones at their defaults) -> SamplingOptions. Each value is
    a number; an "off" value means None; SamplingOptions refuses the rest with a message naming the knob."""
    settings = {}
    for control, value in zip(CONTROLS, values):
        if value is None:
            continue
        number = real_number(value, control.label.split(" (")[0].lower())
        if control.off is not None and number == control.off:
            continue
        # A slider sends 8.0 for 8: SamplingOptions takes any whole float where an int belongs.
        settings[control.name] = number
    return SamplingOptions(**settings)

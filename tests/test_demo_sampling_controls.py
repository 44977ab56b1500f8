"""The Generate tab's sampling sliders: one per SamplingOptions knob, off values become None, and a bad value
names its knob."""
from __future__ import annotations

import dataclasses

import pytest

from demo.sampling_controls import CONTROLS, sampling_options
from videogpt_core.inference.sampling_options import SamplingOptions


def test_every_knob_has_a_slider():
    assert [control.name for control in CONTROLS] == [field.name for field in dataclasses.fields(SamplingOptions)]


def test_off_values_become_none_and_missing_values_their_defaults():
    assert sampling_options([0.8, 0, 1.0, 1.0]) == SamplingOptions(temperature=0.8, top_p=1.0)
    assert sampling_options([1, 40.0, 0.9, 2.0]) == SamplingOptions(top_k=40, top_p=0.9, cfg_scale=2.0)
    assert sampling_options([0.5]) == SamplingOptions(temperature=0.5)  # a client that sends fewer values


def test_a_bad_value_names_the_knob():
    with pytest.raises(ValueError, match="top-k must be a number"):
        sampling_options([1.0, "many"])
    with pytest.raises(ValueError, match="top_k must be a whole number"):
        sampling_options([1.0, 2.5])

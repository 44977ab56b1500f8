"""Sampling options: checked when made, keyword-only and frozen, their processors keep what they promise, and
the command line takes its arguments from the fields."""
from __future__ import annotations

import argparse
import dataclasses
import math

import pytest
import torch

from videogpt_core.inference.sampling_options import SamplingOptions, penalize_repeats, process_logits


def filter_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None) -> torch.Tensor:
    no_codes = torch.zeros(logits.shape[0], 0, dtype=torch.long)
    return process_logits(logits, no_codes, SamplingOptions(temperature=temperature, top_k=top_k, top_p=top_p))


# ---- processors --------------------------------------------------------------------------------------


def test_temperature_divides_the_logits():
    logits = torch.tensor([[2.0, 1.0, -1.0, 0.5]])
    for temperature in (0.5, 1.0, 3.0):
        filtered = filter_logits(logits, temperature=temperature)
        torch.testing.assert_close(filtered, logits / temperature)
    # Low temperature sharpens, high temperature flattens.
    assert filter_logits(logits, 0.5).softmax(-1).max() > logits.softmax(-1).max() > \
        filter_logits(logits, 3.0).softmax(-1).max()


@pytest.mark.parametrize("k", [1, 2, 5, 9, 20])
def test_top_k_keeps_exactly_the_k_largest(k):
    logits = torch.randn(3, 9, generator=torch.Generator().manual_seed(k))
    filtered = filter_logits(logits, top_k=k)
    kept = torch.isfinite(filtered)
    assert (kept.sum(-1) == min(k, 9)).all()
    expected = torch.zeros_like(kept).scatter(-1, logits.topk(min(k, 9), dim=-1).indices, True)
    assert torch.equal(kept, expected)
    torch.testing.assert_close(filtered[kept], logits[kept])


def test_top_p_keeps_the_smallest_set_reaching_p():
    # Probabilities 0.5, 0.3, 0.15, 0.05, given in a shuffled order.
    probs = torch.tensor([0.15, 0.5, 0.05, 0.3])
    logits = probs.log()[None]
    cases = {0.2: [1], 0.45: [1], 0.6: [1, 3], 0.79: [1, 3], 0.81: [0, 1, 3], 0.9: [0, 1, 3],
             0.96: [0, 1, 2, 3], 1.0: [0, 1, 2, 3]}
    for p, expected in cases.items():
        kept = torch.isfinite(filter_logits(logits, top_p=p))[0]
        assert kept.nonzero().flatten().tolist() == expected, p
    # The most likely code always stays, however small p is.
    assert torch.isfinite(filter_logits(logits, top_p=1e-6)).sum() == 1


def test_top_k_then_top_p_then_renormalised():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0, -1.0]])
    filtered = filter_logits(logits, temperature=1.0, top_k=3, top_p=0.7)
    probs = filtered.softmax(-1)[0]
    top3 = logits[0, :3].softmax(-1)
    assert top3[0] < 0.7 <= top3[0] + top3[1]  # so top-p keeps exactly two of the three
    torch.testing.assert_close(probs[:2], top3[:2] / top3[:2].sum())
    assert (probs[2:] == 0).all()


# ---- option checks -----------------------------------------------------------------------------------


@pytest.mark.parametrize("options, name", [
    (dict(temperature=0), "temperature"), (dict(temperature=-1.0), "temperature"),
    (dict(temperature=math.nan), "temperature"), (dict(temperature=math.inf), "temperature"),
    (dict(top_k=0), "top_k"), (dict(top_k=-3), "top_k"), (dict(top_k=2.5), "top_k"),
    (dict(top_p=0.0), "top_p"), (dict(top_p=1.5), "top_p"), (dict(top_p=-0.1), "top_p"),
    (dict(top_p=math.nan), "top_p"), (dict(cfg_scale=-1.0), "cfg_scale"), (dict(cfg_scale=math.nan), "cfg_scale"),
])
def test_bad_options_are_refused_when_made_naming_the_argument(options, name):
    with pytest.raises(ValueError, match=name):
        SamplingOptions(**options)


@pytest.mark.parametrize("name", ["temperature", "top_k", "top_p", "cfg_scale", "repetition_penalty"])
def test_a_bool_is_refused_for_every_numeric_option(name):
    for flag in (True, False):  # True passed for 1.0 would hide a mistake
        with pytest.raises(ValueError, match=f"{name} must be .*got {flag} \\(a bool, not a number\\)"):
            SamplingOptions(**{name: flag})


def test_options_are_keyword_only_frozen_and_whole_top_k_is_an_int():
    with pytest.raises(TypeError):
        SamplingOptions(0.5)
    options = SamplingOptions(top_k=8.0)  # a UI slider sends 8.0
    assert options.top_k == 8 and isinstance(options.top_k, int)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.temperature = 2.0
    assert options.replace(temperature=0.5) == SamplingOptions(temperature=0.5, top_k=8)
    with pytest.raises(ValueError, match="temperature"):
        options.replace(temperature=0)


def test_the_command_line_takes_every_field_and_rebuilds_the_options():
    parser = argparse.ArgumentParser()
    SamplingOptions.add_arguments(parser)
    args = parser.parse_args(["--temperature", "0.8", "--top-k", "8"])
    options = SamplingOptions.from_arguments(args)
    assert options == SamplingOptions(temperature=0.8, top_k=8)
    assert SamplingOptions.from_arguments(parser.parse_args(options.command_words())) == options
    assert SamplingOptions.from_arguments(parser.parse_args([])) == SamplingOptions()
    for option in dataclasses.fields(SamplingOptions):
        assert "--" + option.name.replace("_", "-") in parser.format_help()


def test_a_repetition_penalty_makes_the_codes_drawn_so_far_less_likely():
    logits = torch.tensor([[2.0, -1.0, 0.5, 1.0], [2.0, -1.0, 0.5, 1.0]])
    codes = torch.tensor([[0, 1], [3, 3]])  # row 0 drew codes 0 and 1, row 1 code 3 twice
    penalized = penalize_repeats(logits, codes, 2.0)
    assert penalized.tolist() == [[1.0, -2.0, 0.5, 1.0], [2.0, -1.0, 0.5, 0.5]]
    options = SamplingOptions(repetition_penalty=2.0)
    assert torch.equal(process_logits(logits, codes, options), penalized)
    assert torch.equal(process_logits(logits, codes[:, :0], options), logits)  # nothing drawn yet
    assert len(SamplingOptions(repetition_penalty=1.0).processors()) == 1  # 1 = off
    with pytest.raises(ValueError, match="repetition_penalty"):
        SamplingOptions(repetition_penalty=0.0)

"""Conditions: built from a data batch, checked against a prior's config in one place, and windowed, padded,
shared and doubled as a generation needs."""
from __future__ import annotations

import pytest
import torch

from tiny_models import random_inputs, tiny_prior, tiny_vqvae
from videogpt_core.models.conditions import Conditions


@pytest.fixture(scope="module")
def prior():
    return tiny_prior(tiny_vqvae(), "all")


def test_a_data_batch_gives_what_the_prior_takes(prior):
    cfg = prior.config
    video = torch.rand(2, 3, cfg.sequence_length, cfg.resolution, cfg.resolution) - 0.5
    batch = dict(video=video, label=torch.tensor([0, 2]), actions=torch.zeros(2, cfg.sequence_length, cfg.action_dim),
                 codes=torch.zeros(2, *cfg.latent_shape, dtype=torch.long))
    conditions = Conditions.from_batch(cfg, batch).check(cfg, 2)
    assert torch.equal(conditions.frames, video[:, :, : cfg.n_cond_frames])
    assert set(conditions.tensors()) == {"frames", "labels", "actions"}
    unconditional = tiny_prior(tiny_vqvae(), "none").config
    assert Conditions.from_batch(unconditional, batch).tensors() == {}


def test_the_check_names_what_is_missing_or_wrong(prior):
    cfg = prior.config
    inputs = random_inputs(prior, batch=2)
    Conditions(**inputs).check(cfg, 2)
    with pytest.raises(ValueError, match="labels .* required"):
        Conditions(**{**inputs, "labels": None}).check(cfg, 2)
    with pytest.raises(ValueError, match="NaN"):
        Conditions(**{**inputs, "actions": inputs["actions"] * float("nan")}).check(cfg, 2)
    with pytest.raises(ValueError, match="prefix"):
        Conditions(**inputs, prefix=torch.zeros(2, cfg.seq_len, dtype=torch.long)).check(cfg, 2)


def test_a_generation_pads_windows_shares_and_doubles(prior):
    cfg = prior.config
    fpl, t = cfg.frames_per_latent, cfg.latent_shape[0]
    rows = torch.arange(3 * fpl, dtype=torch.float32)[None, :, None].expand(1, -1, cfg.action_dim)
    conditions = Conditions(labels=torch.tensor([1]), actions=rows).padded(3, cfg)
    assert conditions.actions.shape[1] == max(3, t) * fpl and (conditions.actions[:, 3 * fpl:] == 0).all()
    window = conditions.window(1, cfg)
    assert torch.equal(window.actions, conditions.actions[:, fpl: (1 + t) * fpl])
    shared = window.expanded(3)
    assert shared.labels.tolist() == [1, 1, 1] and shared.actions.shape[0] == 3
    doubled = shared.doubled()
    assert doubled.labels.shape == (6,) and torch.equal(doubled.actions[:3], doubled.actions[3:])

"""Finite scalar quantisation: the code grid, straight-through gradients, a VQ-VAE built on it that trains, saves
and loads, and the options that choose it."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from training_helpers import MovingSquares, vqvae_configs, vqvae_run
from videogpt_core import VQVAE
from videogpt_core.models.fsq import FiniteScalarQuantizer
from videogpt_core.models.prior import VideoGPT
from videogpt_core.training import train_vqvae
from videogpt_core.training.stage_options import VQVAEStageOptions

TINY_FSQ_VQVAE = dict(fsq_levels=(5, 4, 3), n_hiddens=16, n_res_layers=1, downsample=(2, 4, 4),
                      sequence_length=4, resolution=16)


def test_every_point_of_the_grid_is_one_code_and_round_trips():
    quantizer = FiniteScalarQuantizer((5, 4, 3))
    assert quantizer.n_codes == 60 and quantizer.embedding_dim == 3
    # The levels of each channel, written out by hand: odd counts centred on 0, even ones one short on top.
    per_channel = [[-1, -0.5, 0, 0.5, 1], [-1, -0.5, 0, 0.5], [-1, 0, 1]]
    grid = {tuple(point) for point in itertools.product(*per_channel)}
    assert {tuple(v) for v in quantizer.embeddings.tolist()} == grid
    codes = torch.arange(60).view(1, 3, 4, 5)
    vectors = quantizer.lookup(codes)  # (1, 3, 3, 4, 5)
    assert torch.equal(vectors.movedim(1, -1).reshape(-1, 3), quantizer.embeddings)
    # An encoder output that the bounding tanh maps near each grid point (0.9 of its level) gives its code.
    half_width, half = torch.tensor([2.0, 2.0, 1.0]), torch.tensor([4.0, 3.0, 2.0]) * (1 - 1e-3) / 2
    offset = torch.tensor([0.0, 0.5, 0.0])
    levels = vectors.movedim(1, -1) * half_width * 0.9
    z = torch.atanh((levels + offset) / half) - torch.atanh(offset / half)
    assert torch.equal(quantizer.nearest(z.reshape(-1, 3)).view(1, 3, 4, 5), codes)


def test_any_input_lands_on_the_grid_and_gradients_pass_straight_through():
    quantizer = FiniteScalarQuantizer((8, 5, 5))
    z = (torch.randn(2, 3, 2, 4, 4) * 3).requires_grad_()
    out = quantizer(z)
    assert out["codes"].shape == (2, 2, 4, 4) and 0 <= out["codes"].min() and out["codes"].max() < 200
    assert torch.equal(out["quantized"].detach(), quantizer.lookup(out["codes"]))
    assert torch.equal(quantizer.nearest(z.detach().movedim(1, -1).reshape(-1, 3)), out["codes"].flatten())
    out["quantized"].sum().backward()
    assert z.grad is not None and (z.grad.abs() > 0).float().mean() > 0.9  # tanh's slope, nowhere cut off
    assert out["commitment_loss"].item() == 0
    assert 1 <= out["perplexity"].item() <= 200 and 0 < out["usage"].item() <= 1


def test_bad_levels_are_refused():
    with pytest.raises(ValueError, match="three or more"):
        FiniteScalarQuantizer((4, 2))  # two levels: the bounding has no centred shift
    with pytest.raises(ValueError, match="three or more"):
        VQVAE(**{**TINY_FSQ_VQVAE, "fsq_levels": (1,)})


def test_an_fsq_vqvae_trains_saves_loads_and_feeds_a_prior(tmp_path):
    run = tmp_path / "run"
    result = train_vqvae(*vqvae_run(run, steps=20, lr=5e-3, **TINY_FSQ_VQVAE, embedding_dim=None, n_codes=None),
                         train_dataset=MovingSquares(32), val_dataset=MovingSquares(8, offset=1000))
    assert np.mean(result.losses[-5:]) < 0.6 * np.mean(result.losses[:5])
    model = VQVAE.from_pretrained(run / "model")
    assert model.config.fsq_levels == (5, 4, 3) and model.n_codes == 60 and model.embedding_dim == 3
    assert "codebook.embeddings" not in model.state_dict()  # the grid follows from the levels
    codes = model.encode(MovingSquares(2, offset=5)[0]["video"][None])
    assert codes.shape == (1, 2, 4, 4) and model.decode(codes).shape == (1, 3, 4, 16, 16)
    prior = VideoGPT.for_vqvae(model, hidden_dim=24, n_heads=2, n_layers=1)
    assert torch.equal(prior.codebook, model.codebook.embeddings)


def test_the_levels_set_the_codebook_and_refuse_a_different_size():
    options = VQVAEStageOptions(fsq_levels=(8, 8, 8, 5, 5, 5))
    assert (options.n_codes, options.embedding_dim) == (64000, 6)
    with pytest.raises(ValueError, match="n_codes=64000"):
        VQVAEStageOptions(fsq_levels=(8, 8, 8, 5, 5, 5), n_codes=1024)
    _, options = vqvae_configs("run", fsq_levels=(4, 4), embedding_dim=2)
    assert options.n_codes == 16

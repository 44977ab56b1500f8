"""The prior's training forward: queries, keys and values from one (d, 3d) product, eager or compiled, take the
same short fixed run as the three separate products of the cached path."""
from __future__ import annotations

import pytest
import torch

from videogpt_core import VideoGPT
from videogpt_core.training.prior_task import PriorTask
from videogpt_core.training.trainer import LossModule

TINY = dict(latent_shape=(2, 2, 3), n_codes=16, embedding_dim=8, sequence_length=4, resolution=8, hidden_dim=24,
            n_heads=2, n_layers=2, dropout=0.0, attn_dropout=0.0)
KINDS = {"actions": dict(action_dim=2, action_embed_dim=8),
         "frames": dict(n_cond_frames=1, frame_encoder_widths=(4, 4, 8, 6), frame_encoder_blocks=(1, 1, 1, 1))}


def batch_of(model: VideoGPT) -> dict[str, torch.Tensor]:
    config, generator = model.config, torch.Generator().manual_seed(1)
    batch = dict(codes=torch.randint(0, config.n_codes, (2, *config.latent_shape), generator=generator))
    if config.action_dim:
        batch["actions"] = torch.randn(2, config.sequence_length, config.action_dim, generator=generator)
    if config.n_cond_frames:
        batch["frames"] = torch.rand(2, 3, 1, config.resolution, config.resolution, generator=generator) - 0.5
    return batch


def fixed_run(kind: str, separate: bool = False, compile: bool = False, steps: int = 5):
    """(losses, the first step's gradients) of `steps` AdamW steps from seed 0 on one batch."""
    torch.manual_seed(0)
    model = VideoGPT(**TINY, **KINDS[kind]).train()
    model.codebook.normal_()
    if separate:  # the cached path's three products
        for block in model.blocks:
            block._self_attention = block.attn.self_attention
    module = LossModule(PriorTask(model, torch.nn.Identity()), model)
    if compile:
        module.compile()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    batch, losses, gradients = batch_of(model), [], None
    for _ in range(steps):
        loss = module(batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        gradients = gradients or {name: p.grad.clone() for name, p in model.named_parameters()}
        optimizer.step()
        losses.append(loss.item())
    return losses, gradients


def assert_same_run(run, reference) -> None:
    assert run[0] == pytest.approx(reference[0], rel=1e-5)
    for name, gradient in run[1].items():  # the first step's: Adam's later steps magnify rounding
        assert torch.allclose(gradient, reference[1][name], atol=1e-6), name


@pytest.mark.parametrize("kind", KINDS)
def test_one_qkv_product_takes_the_same_steps_as_three(kind):
    assert_same_run(fixed_run(kind), fixed_run(kind, separate=True))


@pytest.mark.slow
def test_the_compiled_training_forward_takes_the_same_steps():
    assert_same_run(fixed_run("actions", compile=True), fixed_run("actions", separate=True))

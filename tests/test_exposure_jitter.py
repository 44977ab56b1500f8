"""Exposure jitter: some training clips made dim or flat, the rest and every validation clip untouched."""
import pytest
import torch

from training_helpers import MovingSquares, TINY_VQVAE, trainer_state, vqvae_run
from videogpt_core.models.vqvae import VQVAE
from videogpt_core.training import train_vqvae
from videogpt_core.training.exposure_jitter import with_random_exposure
from videogpt_core.training.vqvae_task import VQVAETask


def test_chosen_clips_get_lower_contrast_on_8_bit_steps_and_the_rest_stay():
    torch.manual_seed(0)
    video = torch.rand(256, 3, 4, 8, 8) - 0.5
    assert torch.equal(with_random_exposure(video, 0.0), video)
    toned = with_random_exposure(video, 1.0)
    assert toned.min() >= -0.5 and toned.max() <= 0.5
    steps = (toned + 0.5) * 255
    assert torch.allclose(steps, steps.round(), atol=1e-4)
    ratio = toned.std(dim=(1, 2, 3, 4)) / video.std(dim=(1, 2, 3, 4))
    assert ratio.max() < 1.02 and ratio.min() < 0.15 and ratio.median() < 0.5  # down to 0.08, log-uniform
    means = toned.mean(dim=(1, 2, 3, 4))
    assert means.min() < -0.25 and means.max() > 0.25  # dim and bright levels both drawn

    half = with_random_exposure(video, 0.5)
    kept = (half == video).flatten(1).all(dim=1).float().mean()
    assert 0.35 < kept < 0.65
    with pytest.raises(ValueError, match="share"):
        with_random_exposure(video, 1.5)


def test_training_re_exposes_training_clips_only_and_a_resume_keeps_the_share(tmp_path):
    run = tmp_path / "run"
    train_vqvae(*vqvae_run(run, steps=2, exposure_jitter=0.5), train_dataset=MovingSquares(8))
    assert trainer_state(run)["task"]["exposure_jitter"] == 0.5
    train_vqvae(*vqvae_run(run, steps=3, resume=True), train_dataset=MovingSquares(8))
    assert trainer_state(run)["task"]["exposure_jitter"] == 0.5
    with pytest.raises(ValueError, match="exposure-jitter"):
        vqvae_run(run, exposure_jitter=-0.1)

    torch.manual_seed(0)
    model = VQVAE(**TINY_VQVAE).eval()
    video = MovingSquares(4)[0]["video"][None].repeat(4, 1, 1, 1, 1)
    task = VQVAETask(model, exposure_jitter=1.0)
    assert torch.equal(task.loss(model, {"video": video})["recon_loss"], model(video)["recon_loss"])

"""Both stages built from their configs on real (tiny) models: learning, the run folder's contents, exact resume."""
import json

import numpy as np
import pytest
import torch

from training_helpers import (QUIET, MovingSquares, StructuredCodes, TINY_VQVAE, prior_run, stop_at, trainer_state,
                              vqvae_configs, vqvae_run)
from videogpt_core.models.prior import VideoGPT
from videogpt_core.models.vqvae import VQVAE
from videogpt_core.training import load_checkpoint, train_prior, train_vqvae


def test_vqvae_loss_falls_and_run_folder_is_complete(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    result = train_vqvae(*vqvae_run(run, steps=20, lr=5e-3, val_every=10, sample_every=10, save_every=10),
                               train_dataset=MovingSquares(32), val_dataset=MovingSquares(8, offset=1000))
    assert result.step == 20 and len(result.losses) == 20 and not result.interrupted
    assert np.mean(result.losses[-5:]) < 0.5 * np.mean(result.losses[:5])
    model = VQVAE.from_pretrained(run / "model")
    assert model.latent_shape == (2, 4, 4) and model.codebook.initialized
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in records if r["split"] == "val"]
    assert [r["step"] for r in val] == [10, 20] and val[-1]["loss"] < val[0]["loss"] and "psnr" in val[-1]
    train_record = records[0]
    for name in ("loss", "lr", "perplexity", "usage", "samples_per_sec", "grad_norm"):
        assert name in train_record
    events = EventAccumulator(str(run / "logs"))
    events.Reload()
    assert "train/loss" in events.Tags()["scalars"] and "val/loss" in events.Tags()["scalars"]
    assert [e.step for e in events.Images("reconstruction")] == [10, 20]
    checkpoint = load_checkpoint(run)
    assert checkpoint["state"]["step"] == 20 and 0 in checkpoint["rng"]
    assert not list(run.glob(".*.tmp")) and not (run / "checkpoint.prev").exists()


def test_vqvae_resume_reproduces_the_uninterrupted_run(tmp_path):
    data = MovingSquares(12)  # 3 batches per epoch: the 6 steps x 2 micro-batches cross epochs
    args = dict(steps=6, grad_accum=2, save_every=100)
    straight = train_vqvae(*vqvae_run(tmp_path / "a", **args), train_dataset=data)

    first = train_vqvae(*vqvae_run(tmp_path / "b", **args), train_dataset=data, callbacks=[stop_at(3)])
    assert first.interrupted and first.step == 3 and trainer_state(tmp_path / "b")["step"] == 3
    # Resumed with DataLoader workers: per-item seeds make the data independent of the worker count.
    resumed = train_vqvae(*vqvae_run(tmp_path / "b", resume=True, **args, num_workers=2), train_dataset=data)
    assert resumed.first_step == 3 and resumed.step == 6

    assert first.losses + resumed.losses == straight.losses  # exactly
    a = VQVAE.from_pretrained(tmp_path / "a" / "model").state_dict()
    b = VQVAE.from_pretrained(tmp_path / "b" / "model").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # weights, codebook buffers, BatchNorm statistics


def test_vqvae_fine_tunes_from_a_saved_model(tmp_path):
    train_vqvae(*vqvae_run(tmp_path / "base", steps=4), train_dataset=MovingSquares(8))
    base = tmp_path / "base" / "model"
    # Only the clip length and frame size may differ from the starting model: the network is convolutional.
    start = dict(QUIET, init_from=str(base), downsample=TINY_VQVAE["downsample"], steps=1, batch_size=4, lr=1e-9)
    tuned = train_vqvae(*vqvae_configs(tmp_path / "tuned", **start, sequence_length=8),
                        train_dataset=MovingSquares(8, frames=8))
    assert tuned.step == 1
    model = VQVAE.from_pretrained(tmp_path / "tuned" / "model")
    assert model.config.sequence_length == 8 and model.config.n_hiddens == TINY_VQVAE["n_hiddens"]
    name = "encoder.convs.0.conv.weight"  # a tiny learning rate: still the starting weights
    torch.testing.assert_close(model.state_dict()[name], VQVAE.from_pretrained(base).state_dict()[name])
    assert not torch.allclose(model.state_dict()[name], VQVAE(**TINY_VQVAE).state_dict()[name])

    with pytest.raises(ValueError, match="n_hiddens"):
        train_vqvae(*vqvae_configs(tmp_path / "clash", **start, n_hiddens=32), train_dataset=MovingSquares(8))


def test_a_finer_grid_starts_from_a_coarser_codecs_weights(tmp_path):
    train_vqvae(*vqvae_run(tmp_path / "base", steps=2), train_dataset=MovingSquares(8))
    base = VQVAE.from_pretrained(tmp_path / "base" / "model")  # downsampling 2,4,4: two strided layers
    start = dict(QUIET, init_from=str(tmp_path / "base" / "model"), steps=1, batch_size=4, lr=1e-9,
                 sequence_length=4, resolution=16)
    train_vqvae(*vqvae_configs(tmp_path / "finer", **start, downsample=(1, 4, 4)), train_dataset=MovingSquares(8))
    finer = VQVAE.from_pretrained(tmp_path / "finer" / "model")
    assert finer.config.downsample == (1, 4, 4) and finer.latent_shape == (4, 4, 4) and base.latent_shape == (2, 4, 4)
    name = "encoder.convs.0.conv.weight"  # the layer whose time stride went from 2 to 1, its weights kept
    torch.testing.assert_close(finer.state_dict()[name], base.state_dict()[name])

    with pytest.raises(ValueError, match="strided layers"):  # 2,2,2 has one halving, the model two
        train_vqvae(*vqvae_configs(tmp_path / "coarser", **start, downsample=(2, 2, 2)),
                    train_dataset=MovingSquares(8))
    with pytest.raises(ValueError, match="--decoder-only keeps every clip's codes"):
        train_vqvae(*vqvae_configs(tmp_path / "codes", **start, downsample=(1, 4, 4), decoder_only=True),
                    train_dataset=MovingSquares(8))


def test_decoder_only_fine_tuning_keeps_every_code_and_learns_in_the_decoder(tmp_path):
    train_vqvae(*vqvae_run(tmp_path / "base", steps=4), train_dataset=MovingSquares(8))
    base = VQVAE.from_pretrained(tmp_path / "base" / "model")
    # No shape options: the starting model's downsampling is not refused as clashing with a default.
    start = dict(QUIET, init_from=str(tmp_path / "base" / "model"), decoder_only=True, steps=6, batch_size=4,
                 lr=5e-3)
    tuned_run = train_vqvae(*vqvae_configs(tmp_path / "tuned", **start), train_dataset=MovingSquares(8))
    assert tuned_run.step == 6
    tuned = VQVAE.from_pretrained(tmp_path / "tuned" / "model")
    before, after = base.state_dict(), tuned.state_dict()
    frozen = [name for name in before if name.split(".")[0] in ("encoder", "pre_vq_conv", "codebook")]
    assert frozen and all(torch.equal(before[name], after[name]) for name in frozen)  # BatchNorm statistics too
    assert not torch.equal(before["decoder.convts.0.convt.weight"], after["decoder.convts.0.convt.weight"])
    video = MovingSquares(2, offset=500)[0]["video"][None]
    assert torch.equal(base.encode(video), tuned.encode(video))
    assert load_checkpoint(tmp_path / "tuned")["state"]["task"]["decoder_only"]  # a resume keeps it

    with pytest.raises(ValueError, match="--init-from"):
        train_vqvae(*vqvae_configs(tmp_path / "fresh", **dict(start, init_from=None)), train_dataset=MovingSquares(8))


@pytest.fixture()
def tiny_vqvae():
    torch.manual_seed(0)
    return VQVAE(**TINY_VQVAE)


def test_prior_loss_falls_and_exports_a_pipeline(tmp_path, tiny_vqvae):
    run = tmp_path / "prior"
    result = train_prior(*prior_run(run, steps=30, lr=1e-2, val_every=30, sample_every=30),
                               train_dataset=StructuredCodes(32), val_dataset=StructuredCodes(8), vqvae=tiny_vqvae)
    assert np.mean(result.losses[-5:]) < 0.6 * np.mean(result.losses[:5])
    assert result.losses[0] == pytest.approx(np.log(16), rel=0.05)  # zero-initialised output layer
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert "bits_per_token" in records[0]
    from videogpt_core.models.checkpoints import load_models
    vqvae, prior = load_models(run / "model")
    assert prior.config.n_classes == 2 and prior.config.class_names == ["a", "b"]
    assert torch.equal(prior.codebook, tiny_vqvae.codebook.embeddings)


def test_prior_resume_reproduces_the_uninterrupted_run(tmp_path, tiny_vqvae):
    data = StructuredCodes(12)
    straight = train_prior(*prior_run(tmp_path / "a"), train_dataset=data, vqvae=tiny_vqvae)
    first = train_prior(*prior_run(tmp_path / "b"), train_dataset=data, vqvae=tiny_vqvae,
                              callbacks=[stop_at(4)])
    resumed = train_prior(*prior_run(tmp_path / "b", resume=True), train_dataset=data, vqvae=tiny_vqvae)
    assert first.losses + resumed.losses == straight.losses
    a = VideoGPT.from_pretrained(tmp_path / "a" / "model" / "prior").state_dict()
    b = VideoGPT.from_pretrained(tmp_path / "b" / "model" / "prior").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_deeper_prior_starts_from_a_trained_one_computing_the_same(tmp_path, tiny_vqvae):
    from videogpt_core.training.prior_stage import deepened
    data = StructuredCodes(8)
    train_prior(*prior_run(tmp_path / "base", steps=4, n_layers=2), train_dataset=data, vqvae=tiny_vqvae)
    base = VideoGPT.from_pretrained(tmp_path / "base" / "model" / "prior").eval()
    codes, labels = torch.randint(0, 16, (3, *base.latent_shape)), torch.tensor([0, 1, 0])
    grown = deepened(base, 5).eval()
    assert grown.config.n_layers == 5 and len(grown.blocks) == 5
    torch.testing.assert_close(grown(codes, labels=labels), base(codes, labels=labels))
    for kept, old in ((0, 0), (2, 1)):  # the old blocks spread out, weights as they were
        assert torch.equal(grown.blocks[kept].attn.fc.weight, base.blocks[old].attn.fc.weight)
    assert not grown.blocks[1].fc_block[2].weight.any() and grown.blocks[1].attn.w_qs.weight.any()

    # The start trains: the new blocks move, and the run resumes as any other (its shape in the trainer state).
    run = tmp_path / "deeper"
    start = dict(init_from=str(tmp_path / "base" / "model"), n_layers=4, dropout=0.0, steps=3)
    train_prior(*prior_run(run, **start), train_dataset=data, vqvae=tiny_vqvae)
    trained = VideoGPT.from_pretrained(run / "model" / "prior")
    assert trained.config.n_layers == 4 and trained.config.dropout == 0.0
    assert trained.blocks[1].fc_block[2].weight.any()
    assert trainer_state(run)["task"]["prior_config"]["n_layers"] == 4
    train_prior(*prior_run(run, resume=True, **dict(start, steps=4)), train_dataset=data, vqvae=tiny_vqvae)
    assert trainer_state(run)["step"] == 4

    with pytest.raises(ValueError, match="hidden_dim"):  # the width is the start's
        train_prior(*prior_run(tmp_path / "wider", **dict(start, hidden_dim=48)), train_dataset=data,
                    vqvae=tiny_vqvae)
    with pytest.raises(ValueError, match="not drop"):
        deepened(base, 1)


class LongerCodes(StructuredCodes):
    """StructuredCodes with 8 latent slices, as a per-frame codec codes 8-frame windows."""

    def __init__(self, n: int):
        super().__init__(n)
        self.meta = {**self.meta, "latent_shape": [8, 4, 4]}

    def __getitem__(self, index):
        item = super().__getitem__(index)
        return {**item, "codes": item["codes"].repeat(4, 1, 1)}


def test_a_per_frame_codec_serves_codes_of_longer_windows_than_it_trained_on(tmp_path):
    torch.manual_seed(0)
    per_frame = VQVAE(**{**TINY_VQVAE, "downsample": (1, 4, 4), "causal": True, "per_frame": True})
    assert per_frame.latent_shape == (4, 4, 4)
    run = tmp_path / "prior"
    train_prior(*prior_run(run, steps=2), train_dataset=LongerCodes(8), vqvae=per_frame)
    from videogpt_core.models.checkpoints import load_models
    vqvae, prior = load_models(run / "model")
    assert vqvae.config.sequence_length == 8 and prior.latent_shape == (8, 4, 4)

    frame_window = VQVAE(**TINY_VQVAE)  # codes a whole clip: its codes of 4-frame clips are no other length's
    with pytest.raises(ValueError, match="latent shape"):
        train_prior(*prior_run(tmp_path / "other", steps=2), train_dataset=LongerCodes(8), vqvae=frame_window)


def test_context_noise_replaces_input_codes_only_and_a_resume_keeps_it(tmp_path, tiny_vqvae):
    from videogpt_core.models.prior import with_random_codes
    codes = torch.randint(0, 16, (64, 2, 16, 16))  # 256 codes a slice: each clip's share is near its rate
    torch.manual_seed(0)
    noisy = with_random_codes(codes, 0.5, 16)
    assert torch.equal(noisy[:, 0], codes[:, 0])  # the given first slice stays exact
    changed = (noisy[:, 1:] != codes[:, 1:]).float().mean(dim=(1, 2, 3))
    assert 0.1 < changed.mean() < 0.4 and changed.max() < 0.6  # rates from [0, 0.5], 1 in 16 redrawn the same
    assert torch.equal(with_random_codes(codes, 0.0, 16), codes)

    run = tmp_path / "prior"
    train_prior(*prior_run(run, steps=2, context_noise=0.3), train_dataset=StructuredCodes(8), vqvae=tiny_vqvae)
    assert trainer_state(run)["task"]["context_noise"] == 0.3
    train_prior(*prior_run(run, steps=3, resume=True), train_dataset=StructuredCodes(8), vqvae=tiny_vqvae)
    assert trainer_state(run)["task"]["context_noise"] == 0.3
    with pytest.raises(ValueError, match="context-noise"):
        prior_run(run, context_noise=1.5)

    from videogpt_core.training.prior_task import PriorTask
    prior = VideoGPT.from_pretrained(run / "model" / "prior").eval()
    codes = codes[:4, :, :4, :4]
    batch = {"codes": codes, "label": torch.zeros(4, dtype=torch.long)}
    task = PriorTask(prior, tiny_vqvae, context_noise=1.0)
    assert torch.equal(task.loss(prior, batch)["loss"], prior.loss(codes, labels=batch["label"])["loss"])


def test_context_noise_from_the_prior_uses_its_own_samples_and_a_resume_keeps_it(tmp_path, tiny_vqvae):
    from videogpt_core.models.prior import with_codes_replaced
    codes = torch.randint(0, 16, (64, 2, 4, 4))
    replacement = torch.randint(16, 32, codes.shape)  # told apart from the codes by their range
    mixed = with_codes_replaced(codes, replacement, 1.0)
    assert torch.equal(mixed[:, 0], codes[:, 0])
    taken = mixed[:, 1:] >= 16
    assert torch.equal(mixed[:, 1:][taken], replacement[:, 1:][taken]) and 0.3 < taken.float().mean() < 0.7

    run = tmp_path / "prior"
    train_prior(*prior_run(run, steps=2, context_noise=0.5, context_noise_from="prior"),
                train_dataset=StructuredCodes(8), vqvae=tiny_vqvae)
    assert trainer_state(run)["task"]["context_noise_from"] == "prior"
    train_prior(*prior_run(run, steps=3, resume=True), train_dataset=StructuredCodes(8), vqvae=tiny_vqvae)
    task = trainer_state(run)["task"]
    assert (task["context_noise"], task["context_noise_from"]) == (0.5, "prior")
    with pytest.raises(ValueError, match="context-noise-from"):
        prior_run(run, context_noise_from="model")

    prior = VideoGPT.from_pretrained(run / "model" / "prior").eval()  # no dropout: the clean loss is fixed
    labels = torch.zeros(4, dtype=torch.long)
    noisy = prior.loss(codes[:4], context_noise=1.0, context_noise_from="prior", labels=labels)["loss"]
    clean = prior.loss(codes[:4], labels=labels)["loss"]
    assert torch.isfinite(noisy) and not torch.equal(noisy, clean)
    with pytest.raises(ValueError, match="context_noise_from"):
        prior.loss(codes[:4], context_noise=0.5, context_noise_from="model", labels=labels)

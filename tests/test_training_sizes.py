"""The training commands' device-sized defaults: the --size presets, bf16 on a CPU that has it, the time
estimate printed at start."""
from __future__ import annotations

import argparse
import dataclasses
import json
from types import SimpleNamespace

import pytest
import torch

from training_helpers import vqvae_configs
from videogpt_core.training import PriorStageOptions, VQVAEStageOptions, train_vqvae
from videogpt_core.training import sizes as training_sizes
from videogpt_core.training.accelerator import resolve_mixed_precision
from videogpt_core.training.cli import configs_from_args, configure_prior_parser, configure_vqvae_parser
from videogpt_core.training.optimization import lr_multiplier
from videogpt_core.training.run_folder import saved_trainer_config
from videogpt_core.training.run_log import estimate_message
from videogpt_core.training.stage_options import apply_size

TINY_VQVAE = dict(embedding_dim=8, n_codes=16, n_hiddens=16, n_res_layers=1, downsample=(2, 4, 4),
                  sequence_length=4, resolution=16)
QUIET = dict(progress=False, num_workers=0, log_every=2, val_every=1000, save_every=1000, sample_every=1000)


def _parser(configure):
    parser = argparse.ArgumentParser()
    configure(parser)
    return parser


def _vqvae_parser():
    return _parser(configure_vqvae_parser)


def _prior_parser():
    return _parser(configure_prior_parser)


def _resolved(parser, argv, stage):
    """The size and the options after the preset filled them (batch_size among them)."""
    options_class = VQVAEStageOptions if stage == "vqvae" else PriorStageOptions
    trainer, options, size = apply_size(*configs_from_args(parser.parse_args(argv), options_class), stage)
    return size, SimpleNamespace(**dataclasses.asdict(options), batch_size=trainer.batch_size)


@pytest.mark.parametrize("cuda, expected", [(False, "small"), (True, "base")])
def test_the_default_size_follows_the_device(monkeypatch, cuda, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    size, args = _resolved(_vqvae_parser(), ["--data", "d", "--out", "o"], "vqvae")
    assert size == expected
    assert args.n_hiddens == training_sizes.PRESETS["vqvae"][expected]["n_hiddens"]
    assert args.batch_size == training_sizes.PRESETS["vqvae"][expected]["batch_size"]


def test_cpu_defaults_build_the_small_models(monkeypatch):
    """Without a GPU the commands build the shipped checkpoints' sizes, not the 21M / 74M reference models."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _, vq = _resolved(_vqvae_parser(), ["--data", "d", "--out", "o"], "vqvae")
    assert (vq.n_hiddens, vq.embedding_dim, vq.n_codes, vq.n_res_layers, vq.batch_size) == (128, 64, 512, 4, 8)
    _, prior = _resolved(_prior_parser(), ["--codes", "c", "--vqvae", "v", "--out", "o"], "prior")
    assert (prior.hidden_dim, prior.n_heads, prior.n_layers) == (192, 6, 4)
    assert prior.frame_encoder_widths == (32, 64, 96, 96) and prior.frame_encoder_blocks == (1, 1, 1, 1)
    # Attention dropout would send PyTorch's CPU attention to its slow unfused kernel.
    assert prior.attn_dropout == 0.0 and prior.dropout == 0.1


def test_explicit_flags_override_the_preset():
    argv = ["--codes", "c", "--vqvae", "v", "--out", "o", "--size", "small", "--hidden-dim", "240",
            "--attn-dropout", "0.1", "--batch-size", "3"]
    _, args = _resolved(_prior_parser(), argv, "prior")
    assert (args.hidden_dim, args.attn_dropout, args.batch_size, args.n_layers) == (240, 0.1, 3, 4)
    _, args = _resolved(_vqvae_parser(), ["--data", "d", "--out", "o", "--size", "base",
                                                 "--n-hiddens", "128"], "vqvae")
    assert (args.n_hiddens, args.embedding_dim) == (128, 256)


def test_an_unknown_size_is_refused(capsys):
    with pytest.raises(SystemExit):
        _vqvae_parser().parse_args(["--data", "d", "--out", "o", "--size", "huge"])
    assert "--size" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--size must be one of small, base"):
        training_sizes.preset("vqvae", "huge")


@pytest.mark.parametrize("native_bf16, expected", [(True, "bf16"), (False, "no")])
def test_auto_precision_is_bf16_on_a_cpu_with_native_bf16(monkeypatch, native_bf16, expected):
    import videogpt_core.training.accelerator as accelerator

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(accelerator, "cpu_supports_bf16", lambda: native_bf16)
    assert resolve_mixed_precision("auto") == expected
    assert resolve_mixed_precision("no") == "no"


def test_the_time_estimate_leaves_out_the_first_step():
    message = estimate_message([30.0, 2.0, 2.0, 3.0, 2.0], steps_left=6000)
    assert "2.00 s per step" in message and "steps 2-5" in message
    assert "about 33 min per 1,000 steps" in message and "3.3 h for the 6,000 steps left" in message


class RandomClips(torch.utils.data.Dataset):
    """n tiny random clips of 4 frames."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        return {"video": torch.rand(3, 4, 16, 16) - 0.5}


def test_a_run_prints_its_size_parameters_and_time_estimate(tmp_path, capsys):
    from videogpt_core.models.vqvae import VQVAE

    args = dict(out=str(tmp_path / "run"), steps=6, batch_size=2, lr=1e-3, warmup=1, **TINY_VQVAE, **QUIET)
    train_vqvae(*vqvae_configs(**args), train_dataset=RandomClips(8))
    err = capsys.readouterr().err
    n_params = sum(p.numel() for p in VQVAE(**TINY_VQVAE).parameters()) / 1e6
    assert f"model size: {training_sizes.default_size()}, chosen for this machine" in err
    assert f"{n_params:.2f}M parameters, batch size 2 per process" in err
    assert "per 1,000 steps" in err and "steps 2-5" in err


def test_resume_without_batch_size_keeps_the_checkpoints(tmp_path):
    args = dict(out=str(tmp_path / "run"), steps=2, batch_size=3, lr=1e-3, warmup=1, **TINY_VQVAE, **QUIET)
    train_vqvae(*vqvae_configs(**args), train_dataset=RandomClips(12))
    resumed = train_vqvae(*vqvae_configs(tmp_path / "run", steps=3, resume=True, **QUIET),
                          train_dataset=RandomClips(12))
    assert resumed.step == 3
    assert saved_trainer_config(tmp_path / "run")["batch_size"] == 3


def test_resume_with_a_new_learning_rate_follows_it(tmp_path):
    # A second cosine at a lower peak: the loaded optimizer and scheduler states must not keep the old one.
    args = dict(steps=2, batch_size=3, lr=1e-3, warmup=1, **TINY_VQVAE, **QUIET)
    train_vqvae(*vqvae_configs(tmp_path / "run", **args), train_dataset=RandomClips(12))
    resumed = dict(args, steps=4, lr=4e-4, resume=True)
    train_vqvae(*vqvae_configs(tmp_path / "run", **resumed), train_dataset=RandomClips(12))
    scheduler = json.loads((tmp_path / "run" / "checkpoint" / "trainer_state.json").read_text())["scheduler"]
    assert scheduler["base_lrs"] == [4e-4] * len(scheduler["base_lrs"])
    assert scheduler["_last_lr"][0] == pytest.approx(4e-4 * lr_multiplier(4, 1, 4))


def test_resume_with_a_new_weight_decay_follows_it(tmp_path):
    args = dict(steps=2, batch_size=3, lr=1e-3, warmup=1, weight_decay=0.0, **TINY_VQVAE, **QUIET)
    train_vqvae(*vqvae_configs(tmp_path / "run", **args), train_dataset=RandomClips(12))
    train_vqvae(*vqvae_configs(tmp_path / "run", **dict(args, steps=3, weight_decay=0.05, resume=True)),
                train_dataset=RandomClips(12))
    groups = torch.load(tmp_path / "run" / "checkpoint" / "optimizer.pt", weights_only=True)["param_groups"]
    assert [group["weight_decay"] for group in groups] == [0.05, 0.0]  # matrices, then biases and gains

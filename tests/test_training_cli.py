"""`videogpt train-vqvae` / `train-prior`: options, help, and errors as one line with exit status 2."""
import argparse
import json

import pytest

from training_helpers import StructuredCodes, TINY_VQVAE, prior_run
import videogpt_core.cli.main as cli
from videogpt_core.models.vqvae import VQVAE
from videogpt_core.training import PriorStageOptions, train_prior
from videogpt_core.training.cli import add_commands, configs_from_args, configure_prior_parser
from videogpt_core.training.stage_options import apply_size


def _prior_parser():
    parser = argparse.ArgumentParser(prog="videogpt train-prior")
    configure_prior_parser(parser)
    return parser


def test_commands_are_registered_with_help(capsys):
    parser = argparse.ArgumentParser(prog="videogpt")
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train-vqvae", "--data", "d.h5", "--out", "run", "--downsample", "1,2,2",
                              "--mixed-precision", "bf16", "--resume"])
    assert args.downsample == (1, 2, 2) and args.resume and args.mixed_precision == "bf16" and callable(args.func)
    args = parser.parse_args(["train-prior", "--codes", "c", "--vqvae", "v", "--out", "r", "--cond-frames", "2",
                              "--class-cond", "--condition", "actions"])
    assert args.cond_frames == 2 and args.conditions == ["class", "actions"]
    with pytest.raises(SystemExit):
        parser.parse_args(["train-prior", "--codes", "c", "--vqvae", "v", "--out", "r", "--condition", "colour"])
    with pytest.raises(SystemExit):
        parser.parse_args(["train-vqvae", "--help"])
    assert "--grad-accum" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        parser.parse_args(["train-vqvae", "--data", "d", "--out", "r", "--downsample", "4,4"])


def test_prior_frame_encoder_size_options(capsys):
    base = ["--codes", "c", "--vqvae", "v", "--out", "o"]
    args = _prior_parser().parse_args(base + ["--frame-encoder-widths", "8,8,8,12",
                                                    "--frame-encoder-blocks", "1,1,1,1"])
    assert args.frame_encoder_widths == (8, 8, 8, 12) and args.frame_encoder_blocks == (1, 1, 1, 1)
    trainer, options = configs_from_args(_prior_parser().parse_args(base + ["--size", "base"]), PriorStageOptions)
    _, defaults, size = apply_size(trainer, options, "prior")
    assert size == "base" and defaults.frame_encoder_widths == (64, 128, 256, 240)  # the reference's ResNet-34
    with pytest.raises(SystemExit):
        _prior_parser().parse_args(base + ["--frame-encoder-widths", "8,x"])
    assert "comma-separated integers" in capsys.readouterr().err


def test_resume_keeps_the_runs_schedule_unless_given_again(tmp_path):
    # A run started with its own schedule, resumed with a new end: the warmup must not restart at the default.
    checkpoint = tmp_path / "run" / "checkpoint"
    checkpoint.mkdir(parents=True)
    started = {"steps": 4000, "lr": 8e-4, "warmup": 90, "min_lr_ratio": 0.05, "batch_size": 8, "compile": True}
    (checkpoint / "trainer_state.json").write_text(json.dumps({"trainer_config": started}))
    base = ["--codes", "c", "--vqvae", "v", "--out", str(tmp_path / "run")]
    resumed = _prior_parser().parse_args(base + ["--resume", "--steps", "2500"])
    trainer, _ = configs_from_args(resumed, PriorStageOptions)
    assert (trainer.steps, trainer.lr, trainer.warmup, trainer.min_lr_ratio) == (2500, 8e-4, 90, 0.05)
    assert trainer.batch_size is None and not trainer.compile  # the size preset and the flag decide these
    trainer, _ = configs_from_args(_prior_parser().parse_args(base + ["--resume", "--warmup", "10"]), PriorStageOptions)
    assert (trainer.steps, trainer.warmup) == (4000, 10)
    trainer, _ = configs_from_args(_prior_parser().parse_args(base), PriorStageOptions)  # a new run: the defaults
    assert (trainer.steps, trainer.lr, trainer.warmup) == (100_000, 3e-4, 1000)


def test_command_line_errors_are_clear(tmp_path, capsys):
    assert cli.main(["train-vqvae", "--data", str(tmp_path / "missing.hdf5"), "--out", str(tmp_path / "r")]) == 2
    assert "missing.hdf5" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--condition actions: the codes carry no actions"):
        train_prior(*prior_run(tmp_path / "p", conditions=("class", "actions")), train_dataset=StructuredCodes(8),
                          vqvae=VQVAE(**TINY_VQVAE))

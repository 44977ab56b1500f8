"""`videogpt train-vqvae` / `videogpt train-prior`: argparse options -> TrainerConfig + stage options.
Defaults are read from the dataclasses, so they are stated once."""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from videogpt_core.models.conditions import TRAINABLE_CONDITIONS
from videogpt_core.models.prior import CONTEXT_NOISE_SOURCES
from videogpt_core.training.prior_stage import train_prior
from videogpt_core.training.run_folder import saved_trainer_config
from videogpt_core.training.sizes import SIZES, preset_help
from videogpt_core.training.stage_options import PriorStageOptions, VQVAEStageOptions
from videogpt_core.training.trainer_config import MIXED_PRECISION_MODES, TrainerConfig
from videogpt_core.training.vqvae_stage import train_vqvae

EPILOG = ("Runs on the CPU, one GPU, or several GPUs / nodes unchanged: `accelerate launch [--num_processes N] "
          "-m videogpt_core {cmd} ...` or `torchrun --nproc-per-node N -m videogpt_core {cmd} ...`. "
          "Ctrl-C / SIGTERM save a checkpoint first; --resume continues. A CPU-time budget: `ulimit -S -t SECONDS` "
          "(its SIGXCPU stops the run the same way). TensorBoard: "
          "`tensorboard --logdir RUN_DIR/logs`.")


def _default(cls, name: str) -> Any:
    return {f.name: f.default for f in dataclasses.fields(cls)}[name]


def _factors(text: str) -> tuple[int, int, int]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected three comma-separated integers T,H,W such as 4,4,4, got {text!r}")
    return values


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 64,128,256,240, got {text!r}") from None


def _add_trainer_args(parser: argparse.ArgumentParser, val_help: str) -> None:
    group = parser.add_argument_group("training (shared by both stages)")

    def add(flag: str, help: str, **kwargs) -> None:
        # Left out of the namespace when not given, so that --resume can tell "not given" from a default.
        name = flag[2:].replace("-", "_")
        group.add_argument(flag, default=argparse.SUPPRESS, **kwargs,
                           help=f"{help} (default: {_default(TrainerConfig, name)}; with --resume: the run's)")

    group.add_argument("--out", required=True, metavar="RUN_DIR",
                       help="run folder: checkpoint/ (full state), model/ (exported), logs/ (TensorBoard)")
    add("--steps", "optimizer steps in total", type=int)
    group.add_argument("--batch-size", type=int, default=None,
                       help="per process; a step sees batch x processes x grad-accum samples (default from --size: "
                            f"{preset_help('vqvae', 'batch_size')})")
    add("--lr", "peak learning rate, AdamW", type=float)
    add("--warmup", "linear warmup steps before the cosine decay", type=int)
    add("--min-lr-ratio", "the cosine ends at this fraction of --lr", type=float)
    add("--weight-decay", "AdamW weight decay", type=float)
    add("--grad-accum", "micro-batches per optimizer step", type=int)
    add("--clip-grad", "max gradient norm, 0 to disable", type=float)
    add("--mixed-precision", "auto: bf16 on a GPU that supports it and on a CPU with native bf16 instructions "
        "(avx512_bf16 / AMX), else full precision", choices=MIXED_PRECISION_MODES)
    group.add_argument("--compile", action="store_true",
                       help="torch.compile the training forward (the loss module): minutes of compiling "
                            "before the first step; validation and media stay uncompiled")
    add("--num-workers", "data loading processes", type=int)
    add("--seed", "seeds weights, data order and dropout", type=int)
    add("--log-every", "steps between logged scalars", type=int)
    add("--val-every", "steps between validations", type=int)
    add("--val-batches", "batches per validation and process", type=int)
    group.add_argument("--val-data", default=None, help=val_help)
    add("--save-every", "steps between checkpoints", type=int)
    add("--sample-every", "steps between TensorBoard videos", type=int)
    group.add_argument("--resume", action="store_true",
                       help="continue the run in --out exactly where it stopped (model shape from the checkpoint; "
                            "the training options above that are not given, from the run's)")
    group.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def _add_size_arg(group) -> None:
    group.add_argument("--size", choices=SIZES, default=None,
                       help="model-size preset: small trains at a usable speed on a CPU, base is the reference's "
                            "size for GPUs; it fills the model options (and --batch-size) not given explicitly "
                            "(default: base with a CUDA GPU, else small)")


def configure_vqvae_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True,
                        help="training videos: an .hdf5 file (see `videogpt make-dataset`), a video folder or UCF-101")
    group = parser.add_argument_group("VQ-VAE (ignored with --resume: the checkpoint decides)")
    _add_size_arg(group)
    group.add_argument("--init-from", default=None, metavar="VQVAE",
                       help="fine-tune: start from this VQ-VAE's weights and shape (its folder or a pipeline folder); "
                            "--sequence-length and --resolution still apply, and --downsample with the same largest "
                            "factor (4,4,4 -> 2,4,4: a finer grid from the same layers)")
    group.add_argument("--decoder-only", action="store_true",
                       help="with --init-from: train only the decoder, the encoder and codebook frozen, so every "
                            "clip keeps its codes (a prior trained on them stays valid)")
    group.add_argument("--exposure-jitter", type=float, default=None, metavar="SHARE",
                       help="make this share of the training clips dim or flat (contrast down to 0.08, the mean "
                            "moved, 8-bit steps) so the codec learns low-contrast video too; validation clips stay "
                            "as they are (default: 0, or on --resume the run's)")
    for flag, help in (("--embedding-dim", "code vector width"), ("--n-codes", "codebook size"),
                       ("--n-hiddens", "encoder / decoder width"), ("--n-res-layers", "attention residual blocks")):
        name = flag[2:].replace("-", "_")
        group.add_argument(flag, type=int, default=None,
                           help=f"{help} (default from --size: {preset_help('vqvae', name)})")
    group.add_argument("--downsample", type=_factors, default=None,
                       help="T,H,W downsampling factors, powers of two (default: 4,4,4, or --init-from's)")
    group.add_argument("--causal", action="store_true", default=None,
                       help="time-causal codec: each frame its own latent slice (needs --downsample 1,H,W), frames "
                            "1..k encode the same whatever follows, so a world model keeps a given frame exactly")
    group.add_argument("--per-frame", action="store_true", default=None,
                       help="each frame coded alone (2D kernels, no attention along time; implies --causal): an "
                            "image codec applied frame by frame, cheaper to train, its codes free of the past")
    group.add_argument("--fsq-levels", type=_int_list, default=None, metavar="L1,L2,...",
                       help="finite scalar quantisation instead of the EMA codebook: the levels of each code channel, "
                            "e.g. 8,8,8,5,5,5 (64,000 codes of 6 channels; sets --n-codes and --embedding-dim)")
    for flag, help in (("--sequence-length", "frames per clip"), ("--resolution", "frame size in pixels"),
                       ("--frame-stride", "take every k-th frame")):
        name = flag[2:].replace("-", "_")
        group.add_argument(flag, type=int, default=_default(VQVAEStageOptions, name),
                           help=help + " (default: %(default)s)")
    _add_trainer_args(parser, "held-out videos (default: the test split of --data)")


def configure_prior_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--codes", required=True, help="a codes folder written by `videogpt encode-dataset`")
    parser.add_argument("--vqvae", required=True,
                        help="the VQ-VAE that made the codes (its folder, a pipeline folder or a train-vqvae run)")
    group = parser.add_argument_group("prior (ignored with --resume: the checkpoint decides)")
    _add_size_arg(group)

    def sized(flag: str, help: str, **kwargs) -> None:
        name = flag[2:].replace("-", "_")
        group.add_argument(flag, default=None, help=f"{help} (default from --size: {preset_help('prior', name)}"
                           + ("" if name != "frame_encoder_widths" else ", base being the reference's ResNet-34")
                           + ")", **kwargs)

    group.add_argument("--init-from", default=None, metavar="PRIOR",
                       help="fine-tune: start from this prior's weights and shape (a pipeline or training run folder "
                            "with the codec of --vqvae); a larger --n-layers makes it deeper, its new blocks starting "
                            "as the identity, and --dropout / --attn-dropout apply")
    sized("--hidden-dim", "transformer width, divisible by 3", type=int)
    sized("--n-heads", "attention heads", type=int)
    sized("--n-layers", "transformer blocks", type=int)
    sized("--dropout", "residual dropout", type=float)
    sized("--attn-dropout", "attention-weight dropout; on a CPU any value > 0 makes steps about 3x slower "
          "(PyTorch's fused CPU attention has no dropout)", type=float)
    group.add_argument("--cond-frames", type=int, default=_default(PriorStageOptions, "cond_frames"), metavar="K",
                       help="condition on the first K frames (default: %(default)s, unconditional)")
    sized("--frame-encoder-widths", "widths of the frame encoder's four residual groups; the last must divide by 3 "
          "and --n-heads", type=_int_list)
    sized("--frame-encoder-blocks", "residual blocks per group of the frame encoder", type=_int_list)
    group.add_argument("--condition", action="append", dest="conditions", choices=sorted(TRAINABLE_CONDITIONS),
                       default=[], metavar="NAME", help="condition on what the codes carry: "
                       f"{', '.join(sorted(TRAINABLE_CONDITIONS))} (repeat for several)")
    group.add_argument("--class-cond", action="append_const", dest="conditions", const="class",
                       help="condition on the class label (names from the codes): --condition class")
    group.add_argument("--action-cond", action="append_const", dest="conditions", const="actions",
                       help="condition on per-frame actions: --condition actions")
    group.add_argument("--cond-drop-prob", type=float, default=_default(PriorStageOptions, "cond_drop_prob"),
                       help="drop the class / action / context conditions with this probability, for guidance "
                       "(default: %(default)s)")
    group.add_argument("--context-noise", type=float, default=None, metavar="RATE",
                       help="replace each training clip's input codes after its first latent slice (a "
                       "rollout's given frame) by random ones at a rate drawn from [0, RATE], the targets kept: "
                       "the prior learns to continue contexts with errors, as its own rollouts have (default: 0, "
                       "or on --resume the run's)")
    group.add_argument("--context-noise-from", choices=CONTEXT_NOISE_SOURCES, default=None,
                       help="where --context-noise's codes come from: random (uniform) or prior (sampled by the "
                       "prior being trained from a teacher-forced pass: errors like its own rollouts'; one more "
                       "forward pass a step) (default: random, or on --resume the run's)")
    _add_trainer_args(parser, "a code cache of held-out clips (`videogpt encode-dataset --split test`); "
                              "without it there is no validation")


def configs_from_args(args: argparse.Namespace, options_class: type) -> tuple[TrainerConfig, Any]:
    """The parsed options split into a TrainerConfig and the stage's options."""
    given = vars(args)
    names = [f.name for f in dataclasses.fields(TrainerConfig)]
    trainer = {name: given[name] for name in names if name in given}
    if given.get("resume"):
        # Options not given are not in `args` (see _add_trainer_args): a resumed run keeps the ones it was
        # started with, so that a default --warmup does not restart its warmup.
        saved = saved_trainer_config(args.out)
        trainer = {**{name: saved[name] for name in names if name in saved}, **trainer}
    options = {f.name: given[f.name] for f in dataclasses.fields(options_class) if f.name in given}
    return TrainerConfig(**{**trainer, "out_dir": str(args.out)}), options_class(**options)


def _run_vqvae(args: argparse.Namespace) -> int:
    return train_vqvae(*configs_from_args(args, VQVAEStageOptions)).exit_code


def _run_prior(args: argparse.Namespace) -> int:
    return train_prior(*configs_from_args(args, PriorStageOptions)).exit_code


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    vqvae = subparsers.add_parser(
        "train-vqvae", help="train the VQ-VAE (stage 1) on videos",
        description="Train the VQ-VAE video codec. Writes RUN_DIR/checkpoint (resumable), RUN_DIR/model "
                    "(VQVAE.from_pretrained) and RUN_DIR/logs (TensorBoard: losses, codebook usage, "
                    "original|reconstruction videos).",
        epilog=EPILOG.format(cmd="train-vqvae"))
    configure_vqvae_parser(vqvae)
    vqvae.set_defaults(func=_run_vqvae)

    prior = subparsers.add_parser(
        "train-prior", help="train the GPT prior (stage 2) on cached codes",
        description="Train the VideoGPT prior on codes cached by `videogpt encode-dataset`. Writes "
                    "RUN_DIR/checkpoint, RUN_DIR/model (a pipeline folder: vqvae/ + prior/) and RUN_DIR/logs.",
        epilog=EPILOG.format(cmd="train-prior"))
    configure_prior_parser(prior)
    prior.set_defaults(func=_run_prior)

"""Convert checkpoints of the reference VideoGPT implementation (PyTorch Lightning `.ckpt`) to our format.

A VQ-VAE checkpoint becomes a VQ-VAE folder; a prior checkpoint (which embeds its VQ-VAE under `vqvae.`)
becomes a pipeline folder OUT/vqvae + OUT/prior. The dense causal-mask buffers carry nothing and are dropped.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import torch

from videogpt_core.models.checkpoints import save_pipeline
from videogpt_core.models.config import VideoGPTConfig, VQVAEConfig
from videogpt_core.models.prior import VideoGPT
from videogpt_core.models.vqvae import VQVAE

# Reference prior key prefix -> ours (the VQ-VAE's keys are the same as ours).
_PRIOR_RENAMES = [
    (r"^attn_stack\.right_shift\.sos$", "sos"),
    (r"^attn_stack\.pos_embd\.", "pos_embd."),
    (r"^attn_stack\.attn_nets\.", "blocks."),
    (r"^resnet\.", "frame_encoder."),
    (r"^cond_pos_embd\.", "frame_pos_embd."),
]
_MASK = re.compile(r"\.attn\.attn\.mask$")


class _LightningClass:
    """Stands in for a Lightning class named in a checkpoint; Lightning itself is never imported."""


# Lightning < 1.5 (the reference used 1.3) keys `callbacks` by the callback's class, so reference
# checkpoints name these classes, only as dict keys: a stand-in is enough and runs nothing.
_LIGHTNING_CALLBACKS = [(_LightningClass, f"pytorch_lightning.callbacks.{module}.{name}")
                        for module, name in (("model_checkpoint", "ModelCheckpoint"),
                                             ("early_stopping", "EarlyStopping"))]


def read_lightning_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(state_dict, hyper-parameters) of a Lightning .ckpt, unpickled weights-only (only Namespace allowed)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    try:
        with torch.serialization.safe_globals([argparse.Namespace, *_LIGHTNING_CALLBACKS]):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means the file is not usable
        raise ValueError(f"{path}: not a readable reference checkpoint ({type(error).__name__}: {error})") from None
    if not isinstance(data, dict) or "state_dict" not in data:
        raise ValueError(f"{path}: not a Lightning checkpoint (no 'state_dict' entry)")
    hparams = data.get("hyper_parameters") or {}
    args = hparams.get("args", hparams)
    args = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    return data["state_dict"], args


def _vqvae_config_from(state: dict, args: dict, latent_shape=None) -> VQVAEConfig:
    n_res_layers = len({k.split(".")[2] for k in state if re.match(r"encoder\.res_stack\.\d+\.block\.", k)})
    sequence_length, resolution = int(args["sequence_length"]), int(args["resolution"])
    if latent_shape is not None:
        downsample = (sequence_length // latent_shape[0], resolution // latent_shape[1],
                      resolution // latent_shape[2])
    else:
        downsample = tuple(int(d) for d in args["downsample"])
    return VQVAEConfig(
        embedding_dim=state["pre_vq_conv.conv.weight"].shape[0],
        n_codes=state["codebook.embeddings"].shape[0],
        n_hiddens=state["encoder.convs.0.conv.weight"].shape[0],
        n_res_layers=n_res_layers, downsample=downsample,
        sequence_length=sequence_length, resolution=resolution)


def convert_vqvae_state(state: dict, args: dict, latent_shape=None) -> VQVAE:
    vqvae = VQVAE(config=_vqvae_config_from(state, args, latent_shape))
    vqvae.load_weights(state, source="reference VQ-VAE state_dict")
    return vqvae


def convert_prior_state(state: dict, args: dict) -> tuple[VQVAE, VideoGPT]:
    if args.get("attn_type", "full") != "full":
        raise ValueError(f"only attn_type='full' priors can be converted, this one is {args['attn_type']!r}")
    vq_state = {k[len("vqvae."):]: v for k, v in state.items() if k.startswith("vqvae.")}
    if not vq_state:
        raise ValueError("prior checkpoint holds no 'vqvae.' weights")
    latent_shape = tuple(state[f"attn_stack.pos_embd.emb.d_{i}"].shape[0] for i in range(3))
    vqvae = convert_vqvae_state(vq_state, args, latent_shape)

    ours = {}
    for key, value in state.items():
        if key.startswith("vqvae.") or _MASK.search(key):
            continue
        for pattern, replacement in _PRIOR_RENAMES:
            key = re.sub(pattern, replacement, key)
        ours[key] = value
    ours["codebook"] = vq_state["codebook.embeddings"]
    class_cond = bool(args.get("class_cond")) or "norm.w.weight" in state
    n_classes = state["norm.w.weight"].shape[1] if class_cond else 0
    config = VideoGPTConfig(
        latent_shape=latent_shape, n_codes=vqvae.n_codes, embedding_dim=vqvae.embedding_dim,
        sequence_length=vqvae.config.sequence_length, resolution=vqvae.config.resolution,
        hidden_dim=state["fc_in.weight"].shape[0], n_heads=int(args["heads"]), n_layers=int(args["layers"]),
        dropout=float(args.get("dropout", 0.2)), attn_dropout=float(args.get("attn_dropout", 0.3)),
        n_cond_frames=int(args.get("n_cond_frames", 0)), n_classes=n_classes)
    prior = VideoGPT(config=config)
    prior.load_weights(ours, source="reference prior state_dict")
    return vqvae, prior


def convert_reference(checkpoint: str | Path, out_dir: str | Path) -> str:
    """Convert a reference .ckpt; returns 'vqvae' or 'prior' (what it held)."""
    state, args = read_lightning_checkpoint(checkpoint)
    out_dir = Path(out_dir)
    try:
        if "fc_in.weight" in state:
            vqvae, prior = convert_prior_state(state, args)
            save_pipeline(out_dir, vqvae, prior)
            return "prior"
        if "codebook.embeddings" in state:
            convert_vqvae_state(state, args).save_pretrained(out_dir)
            return "vqvae"
    except KeyError as error:
        raise ValueError(f"{checkpoint}: missing {error} (hyper-parameter or weight); is it a reference "
                         "VideoGPT checkpoint?") from None
    raise ValueError(f"{checkpoint}: neither a reference VQ-VAE nor a prior (no codebook or fc_in weights)")


def _run(args: argparse.Namespace) -> int:
    kind = convert_reference(args.checkpoint, args.out_dir)
    where = f"{args.out_dir}/vqvae and {args.out_dir}/prior" if kind == "prior" else str(args.out_dir)
    print(f"converted a reference {kind} checkpoint to {where}")
    return 0


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert-reference", help="convert a checkpoint of the reference VideoGPT code to our format",
        description="Read a reference VideoGPT Lightning .ckpt (VQ-VAE or prior; unpickled weights-only) and "
        "write our format: a VQ-VAE folder, or for a prior a pipeline folder OUT_DIR/vqvae + OUT_DIR/prior.")
    parser.add_argument("checkpoint", help="the reference .ckpt file")
    parser.add_argument("out_dir", help="folder to write (created)")
    parser.set_defaults(func=_run)

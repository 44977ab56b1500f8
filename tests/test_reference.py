"""Tests for the reference-checkpoint converter: reference-layout Lightning .ckpt files built from the
recorded key listing (sizes scaled down), converted, and checked against tests/reference_impl.py."""
from __future__ import annotations

import argparse
import ast
import math
import re
import sys
import types
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

import reference_impl
from videogpt_core import VQVAE
from videogpt_core.cli.main import main as cli_main
from videogpt_core.models.checkpoints import load_models
from videogpt_core.models.reference import convert_reference, read_lightning_checkpoint

KEY_LISTING = Path(__file__).parent / "data" / "reference_state_dict_keys.txt"

# Scaled-down sizes: the listing's names and structure, tiny widths (the frame ResNet keeps its widths,
# which the converter assumes).
VQ = dict(n_hiddens=24, embedding_dim=12, n_codes=32, n_res_layers=4)
PRIOR = dict(hidden_dim=48, heads=4, layers=2, n_classes=5)
LATENT = (2, 4, 4)


# ------------------------------------------------------------------------------------------------ builders


def read_key_listing() -> dict[str, list[tuple[str, tuple[int, ...]]]]:
    """Section title -> [(key, shape)] from the recorded listing of real reference checkpoints."""
    sections: dict[str, list] = {}
    current = None
    for line in KEY_LISTING.read_text().splitlines():
        if line.startswith("## "):
            current = sections.setdefault(line[3:], [])
        elif line.strip():
            key, shape, _dtype = line.split("\t")
            current.append((key, tuple(ast.literal_eval(shape))))
    return sections


def section(title_start: str) -> list[tuple[str, tuple[int, ...]]]:
    matches = [v for k, v in read_key_listing().items() if k.startswith(title_start)]
    assert len(matches) == 1, f"listing has no single section starting with {title_start!r}"
    return matches[0]


def vqvae_shapes() -> dict[str, tuple[int, ...]]:
    n, d, codes = VQ["n_hiddens"], VQ["embedding_dim"], VQ["n_codes"]
    sizes = {240: n, 120: n // 2, 256: d, 1024: codes}  # kernel sizes (1, 3, 4) and RGB (3) stay
    return {key: tuple(sizes.get(s, s) for s in shape) for key, shape in section("VQVAE")}


def prior_shapes(kind: str, resolution: int) -> dict[str, tuple[int, ...]]:
    """kind: 'frames' (the listing's frame-conditioned prior), 'class', or 'uncond' (the frame-conditioned
    listing without its frame parts). Includes the VQ-VAE under 'vqvae.' as a reference prior does."""
    hidden, seq_len = PRIOR["hidden_dim"], math.prod(LATENT)
    listed = section("VideoGPT prior, class" if kind == "class" else "VideoGPT prior, frame")
    if kind == "uncond":
        listed = [(k, s) for k, s in listed
                  if not re.match(r"resnet\.|cond_pos_embd\.", k) and ".enc_attn." not in k
                  and ".pre_enc_norm." not in k]
    sizes = {576: hidden, 2304: 4 * hidden, 256: VQ["embedding_dim"], 1024: VQ["n_codes"],
             101: PRIOR["n_classes"]}  # 240 (frame features) stays
    shapes = {}
    for key, shape in listed:
        if key.startswith("resnet."):
            shapes[key] = shape  # reference widths, resolution-free
        elif m := re.match(r"attn_stack\.pos_embd\.emb\.d_(\d)$", key):
            shapes[key] = (LATENT[int(m.group(1))], hidden // 3)
        elif m := re.match(r"cond_pos_embd\.emb\.d_(\d)$", key):
            shapes[key] = (1 if m.group(1) == "0" else resolution // 4, shape[1])
        elif key.endswith(".attn.attn.mask"):
            shapes[key] = (seq_len, seq_len)
        else:
            shapes[key] = tuple(sizes.get(s, s) for s in shape)
    shapes.update({f"vqvae.{k}": s for k, s in vqvae_shapes().items()})
    return shapes


def fill(key: str, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """A plausible trained value for a reference tensor, so every part of the network matters."""
    def randn(scale=1.0):
        return torch.randn(shape, generator=generator) * scale

    def uniform(low, high):
        return low + (high - low) * torch.rand(shape, generator=generator)

    if key.endswith("attn.attn.mask"):
        return torch.tril(torch.ones(shape))  # the reference's dense causal mask buffer
    if key.endswith("num_batches_tracked"):
        return torch.tensor(1000)
    if key.endswith("running_var"):
        return uniform(0.5, 1.5)
    if key.endswith("running_mean"):
        return randn(0.1)
    if key.endswith("codebook.N"):
        return uniform(1.0, 10.0)
    if key.endswith(("codebook.embeddings", "codebook.z_avg")):
        return randn()
    if re.search(r"emb\.d_\d$", key) or key.endswith("sos"):
        return randn(0.3)
    if key.endswith(".g"):
        return 1 + randn(0.1)
    if key.endswith(".b") or (len(shape) == 1 and key.endswith("bias")):
        return randn(0.1)
    if len(shape) == 1 and key.endswith("weight"):  # BatchNorm / LayerNorm scale
        return 1 + randn(0.1)
    if key.endswith(("norm.w.weight", "norm.wb.weight")):
        return randn(0.3)
    return randn(1.0 / math.sqrt(math.prod(shape[1:])))


def reference_state(shapes: dict[str, tuple[int, ...]], seed: int) -> OrderedDict:
    generator = torch.Generator().manual_seed(seed)
    return OrderedDict((key, fill(key, shape, generator)) for key, shape in shapes.items())


def fit_codebook(state: dict, downsample, clip: tuple[int, int], prefix: str = "") -> None:
    """Set the codebook to encoder outputs of random clips (as its data-dependent init does), so random
    videos map to many different codes rather than to the one code nearest to everything."""
    frames, size = clip
    video = random_video((4, 3, frames, size, size), seed=11)
    z = reference_impl.vqvae_quantizer_input(state, video, downsample, prefix)
    flat = z.permute(0, 2, 3, 4, 1).reshape(-1, z.shape[1])
    chosen = flat[torch.randperm(flat.shape[0], generator=torch.Generator().manual_seed(12))[: VQ["n_codes"]]]
    state[prefix + "codebook.embeddings"] = chosen.clone()
    state[prefix + "codebook.z_avg"] = chosen.clone()


def lightning_checkpoint(state: dict, args: dict) -> dict:
    """What Lightning 1.3 pickles: weights, the hyper-parameters Namespace and the trainer's extras."""
    return {
        "epoch": 41,
        "global_step": 20000,
        "pytorch-lightning_version": "1.3.3",
        "state_dict": state,
        "hparams_name": "kwargs",
        "hyper_parameters": {"args": argparse.Namespace(**args)},
        "optimizer_states": [{
            "state": {0: {"step": 20000, "exp_avg": torch.zeros(3), "exp_avg_sq": torch.zeros(3)}},
            "param_groups": [{"lr": 3e-4, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0,
                              "amsgrad": False, "params": [0]}],
        }],
        "lr_schedulers": [{"T_max": 200000, "eta_min": 0, "base_lrs": [3e-4], "last_epoch": 20000,
                           "_step_count": 20001, "verbose": False, "_get_lr_called_within_step": False,
                           "_last_lr": [3e-4]}],
    }


def vqvae_args(downsample, sequence_length: int, resolution: int) -> dict:
    return dict(embedding_dim=VQ["embedding_dim"], n_codes=VQ["n_codes"], n_hiddens=VQ["n_hiddens"],
                n_res_layers=VQ["n_res_layers"], downsample=list(downsample), sequence_length=sequence_length,
                resolution=resolution, data_path="/data/bair.hdf5", batch_size=32, num_workers=8, gpus=2)


def prior_args(kind: str, sequence_length: int, resolution: int) -> dict:
    return dict(vqvae="bair_stride4x2x2", n_cond_frames=1 if kind == "frames" else 0,
                class_cond=kind == "class", class_cond_dim=PRIOR["n_classes"] if kind == "class" else None,
                hidden_dim=PRIOR["hidden_dim"], heads=PRIOR["heads"], layers=PRIOR["layers"], dropout=0.2,
                attn_type="full", attn_dropout=0.3, resolution=resolution, sequence_length=sequence_length,
                data_path="/data/bair.hdf5", batch_size=32, num_workers=8, gpus=1, max_steps=200000,
                precision=32)


def random_video(shape, seed: int) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) - 0.5


def relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return ((ours - reference).abs().max() / reference.abs().max()).item()


# Sizes per prior kind: the frame ResNet needs resolution / 4 features, so that case uses 16 x 16 frames.
PRIOR_CLIPS = {  # kind -> (sequence_length, resolution, downsample giving the 2x4x4 latent)
    "uncond": (8, 8, (4, 2, 2)),
    "class": (8, 8, (4, 2, 2)),
    "frames": (8, 16, (4, 4, 4)),
}


@pytest.fixture(scope="module")
def vqvae_checkpoint(tmp_path_factory):
    state = reference_state(vqvae_shapes(), seed=1)
    fit_codebook(state, (4, 2, 2), (8, 8))
    path = tmp_path_factory.mktemp("ref") / "vqvae.ckpt"
    torch.save(lightning_checkpoint(state, vqvae_args((4, 2, 2), 8, 8)), path)
    return path, state


def make_prior_checkpoint(directory: Path, kind: str) -> tuple[Path, OrderedDict]:
    sequence_length, resolution, _ = PRIOR_CLIPS[kind]
    state = reference_state(prior_shapes(kind, resolution), seed=2)
    fit_codebook(state, PRIOR_CLIPS[kind][2], (sequence_length, resolution), prefix="vqvae.")
    path = directory / f"prior_{kind}.ckpt"
    torch.save(lightning_checkpoint(state, prior_args(kind, sequence_length, resolution)), path)
    return path, state


# ------------------------------------------------------------------------------------------------ VQ-VAE


def test_key_listing_copy_has_the_three_reference_configurations():
    titles = list(read_key_listing())
    assert len(titles) == 3
    assert any(t.startswith("VQVAE") for t in titles)
    assert len(section("VQVAE")) == 283 and len(section("VideoGPT prior, class")) == 36


def test_vqvae_checkpoint_converts_with_identical_weights(vqvae_checkpoint, tmp_path):
    path, state = vqvae_checkpoint
    assert convert_reference(path, tmp_path / "out") == "vqvae"
    vqvae = VQVAE.from_pretrained(tmp_path / "out")
    config = vqvae.config
    assert (config.n_hiddens, config.embedding_dim, config.n_codes, config.n_res_layers) == (24, 12, 32, 4)
    assert config.downsample == (4, 2, 2) and vqvae.latent_shape == LATENT
    ours = vqvae.state_dict()
    assert set(ours) == set(state)
    for key, value in state.items():
        assert torch.equal(ours[key], value), key


def test_vqvae_matches_the_reference_forward(vqvae_checkpoint, tmp_path):
    path, state = vqvae_checkpoint
    convert_reference(path, tmp_path / "out")
    vqvae = VQVAE.from_pretrained(tmp_path / "out").eval()
    video = random_video((2, 3, 8, 8, 8), seed=3)

    codes = vqvae.encode(video)
    reference_codes = reference_impl.vqvae_encode(state, video, (4, 2, 2))
    assert codes.shape == (2, *LATENT)
    assert torch.equal(codes, reference_codes)
    assert reference_codes.unique().numel() > 4  # a meaningful comparison, not one code everywhere

    z = vqvae.quantizer_input(video)
    assert relative_error(z, reference_impl.vqvae_quantizer_input(state, video, (4, 2, 2))) < 1e-4
    with torch.no_grad():
        decoded = vqvae.decode(codes)
    reference_decoded = reference_impl.vqvae_decode(state, reference_codes, (4, 2, 2))
    assert decoded.shape == (2, 3, 8, 8, 8)
    assert relative_error(decoded, reference_decoded) < 1e-4


# ------------------------------------------------------------------------------------------------ priors


def check_prior_conversion(tmp_path: Path, kind: str) -> None:
    sequence_length, resolution, downsample = PRIOR_CLIPS[kind]
    path, state = make_prior_checkpoint(tmp_path, kind)
    assert convert_reference(path, tmp_path / "out") == "prior"
    vqvae, prior = load_models(tmp_path / "out")
    vqvae.eval()
    prior.eval()

    cfg = prior.config
    assert cfg.latent_shape == LATENT and cfg.n_codes == VQ["n_codes"]
    assert (cfg.hidden_dim, cfg.n_heads, cfg.n_layers) == (48, 4, 2)
    assert cfg.n_classes == (PRIOR["n_classes"] if kind == "class" else 0)
    assert cfg.n_cond_frames == (1 if kind == "frames" else 0)
    assert vqvae.config.downsample == downsample
    assert torch.equal(prior.codebook, state["vqvae.codebook.embeddings"])
    assert not any(k.endswith("mask") for k in prior.state_dict())  # dense masks dropped
    vq_state = {k[len("vqvae."):]: v for k, v in state.items() if k.startswith("vqvae.")}
    for key, value in vqvae.state_dict().items():
        assert torch.equal(value, vq_state[key]), key

    generator = torch.Generator().manual_seed(4)
    codes = torch.randint(0, VQ["n_codes"], (2, *LATENT), generator=generator)
    frames = random_video((2, 3, 1, resolution, resolution), seed=5) if kind == "frames" else None
    labels = torch.tensor([1, 4]) if kind == "class" else None
    with torch.no_grad():
        logits = prior(codes, frames=frames, labels=labels)
    reference_logits = reference_impl.prior_logits(state, codes, PRIOR["heads"], frames=frames, labels=labels)
    assert logits.shape == reference_logits.shape == (2, *LATENT, VQ["n_codes"])
    assert reference_logits.abs().max() > 0.1
    assert relative_error(logits, reference_logits) < 1e-4

    # The embedded VQ-VAE converts too: same codes as the reference encoder on a clip of the prior's size.
    video = random_video((1, 3, sequence_length, resolution, resolution), seed=6)
    assert torch.equal(vqvae.encode(video), reference_impl.vqvae_encode(state, video, downsample, "vqvae."))


def test_unconditional_prior_matches_the_reference(tmp_path):
    check_prior_conversion(tmp_path, "uncond")


def test_class_conditional_prior_matches_the_reference(tmp_path):
    check_prior_conversion(tmp_path, "class")


@pytest.mark.slow
def test_frame_conditioned_prior_matches_the_reference(tmp_path):
    check_prior_conversion(tmp_path, "frames")


def test_class_conditioning_changes_the_converted_logits(tmp_path):
    path, state = make_prior_checkpoint(tmp_path, "class")
    convert_reference(path, tmp_path / "out")
    _, prior = load_models(tmp_path / "out")
    prior.eval()
    codes = torch.zeros(2, *LATENT, dtype=torch.long)
    with torch.no_grad():
        a = prior(codes, labels=torch.tensor([0, 0]))
        b = prior(codes, labels=torch.tensor([0, 3]))
    assert torch.equal(a[0], b[0]) and not torch.allclose(a[1], b[1])
    reference = reference_impl.prior_logits(state, codes, PRIOR["heads"], labels=torch.tensor([0, 3]))
    assert relative_error(b, reference) < 1e-4


# ------------------------------------------------------------------------------------------------ CLI and errors


def test_cli_converts_a_checkpoint(vqvae_checkpoint, tmp_path, capsys):
    path, _ = vqvae_checkpoint
    out = tmp_path / "converted"
    assert cli_main(["convert-reference", str(path), str(out)]) == 0
    assert "vqvae" in capsys.readouterr().out
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()


def test_cli_reports_a_bad_file_and_exits_2(tmp_path, capsys):
    bad = tmp_path / "notes.ckpt"
    bad.write_text("not a checkpoint")
    assert cli_main(["convert-reference", str(bad), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "convert-reference" in err and str(bad) in err
    assert not (tmp_path / "out").exists()


LOADED_MARKER: list[str] = []


def _mark_loaded():
    LOADED_MARKER.append("code ran")
    return {}


class PickledPayload:
    """Unpickling this calls _mark_loaded: what a malicious checkpoint could do with any function."""

    def __reduce__(self):
        return (_mark_loaded, ())


def test_checkpoint_with_a_disallowed_global_is_refused_without_running_it(tmp_path):
    path = tmp_path / "evil.ckpt"
    checkpoint = lightning_checkpoint({"codebook.embeddings": torch.zeros(4, 2)}, {"resolution": 8})
    checkpoint["payload"] = PickledPayload()
    torch.save(checkpoint, path)
    LOADED_MARKER.clear()
    with pytest.raises(ValueError, match="not a readable reference checkpoint") as error:
        convert_reference(path, tmp_path / "out")
    assert str(path) in str(error.value) and "global" in str(error.value).lower()
    assert LOADED_MARKER == []
    assert not (tmp_path / "out").exists()


def test_lightning_1_3_callback_states_keyed_by_class_are_accepted(vqvae_checkpoint, tmp_path, monkeypatch):
    """Lightning < 1.5 keys `callbacks` by the callback's class, and the reference's training scripts use
    ModelCheckpoint, so real reference checkpoints hold that class as a pickle global. The converter must
    accept it without importing Lightning (which the user does not have)."""
    module_name = "pytorch_lightning.callbacks.model_checkpoint"
    fake = types.ModuleType(module_name)

    class ModelCheckpoint:  # stands in for Lightning's class while pickling
        pass

    ModelCheckpoint.__module__, ModelCheckpoint.__qualname__ = module_name, "ModelCheckpoint"
    fake.ModelCheckpoint = ModelCheckpoint
    for name in ("pytorch_lightning", "pytorch_lightning.callbacks", module_name):
        monkeypatch.setitem(sys.modules, name, fake if name == module_name else types.ModuleType(name))
    source, state = vqvae_checkpoint
    checkpoint = torch.load(source, weights_only=False)
    checkpoint["callbacks"] = {ModelCheckpoint: {"monitor": "val/recon_loss", "best_model_score": torch.tensor(0.1),
                                                 "best_model_path": "/ckpt/epoch=41.ckpt", "current_score": None,
                                                 "dirpath": "/ckpt"}}
    path = tmp_path / "pl13.ckpt"
    torch.save(checkpoint, path)
    for name in ("pytorch_lightning", "pytorch_lightning.callbacks", module_name):
        monkeypatch.delitem(sys.modules, name)  # as on the user's machine: no Lightning installed

    assert convert_reference(path, tmp_path / "out") == "vqvae"
    assert torch.equal(VQVAE.from_pretrained(tmp_path / "out").codebook.embeddings, state["codebook.embeddings"])


def test_non_checkpoint_files_are_refused_clearly(tmp_path):
    text = tmp_path / "readme.ckpt"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not a readable reference checkpoint"):
        convert_reference(text, tmp_path / "a")

    tensor_only = tmp_path / "tensor.ckpt"
    torch.save(torch.zeros(3), tensor_only)
    with pytest.raises(ValueError, match="no 'state_dict'"):
        convert_reference(tensor_only, tmp_path / "b")

    other_model = tmp_path / "resnet.ckpt"
    torch.save(lightning_checkpoint({"fc.weight": torch.zeros(2, 2)}, {}), other_model)
    with pytest.raises(ValueError, match="neither a reference VQ-VAE nor a prior"):
        convert_reference(other_model, tmp_path / "c")

    with pytest.raises(FileNotFoundError, match="no such checkpoint file"):
        convert_reference(tmp_path / "missing.ckpt", tmp_path / "d")


def test_missing_hyper_parameters_are_named(vqvae_checkpoint, tmp_path):
    _, state = vqvae_checkpoint
    path = tmp_path / "no_args.ckpt"
    args = vqvae_args((4, 2, 2), 8, 8)
    del args["resolution"]
    torch.save(lightning_checkpoint(state, args), path)
    with pytest.raises(ValueError, match="resolution"):
        convert_reference(path, tmp_path / "out")


def test_sparse_attention_priors_are_refused(tmp_path):
    state = reference_state(prior_shapes("uncond", 8), seed=7)
    args = prior_args("uncond", 8, 8)
    args["attn_type"] = "sparse"
    path = tmp_path / "sparse.ckpt"
    torch.save(lightning_checkpoint(state, args), path)
    with pytest.raises(ValueError, match="attn_type"):
        convert_reference(path, tmp_path / "out")


def test_read_lightning_checkpoint_returns_weights_and_args(vqvae_checkpoint):
    path, state = vqvae_checkpoint
    weights, args = read_lightning_checkpoint(path)
    assert list(weights) == list(state)
    assert args["n_codes"] == VQ["n_codes"] and args["downsample"] == [4, 2, 2]


def test_reference_impl_detects_a_wrong_weight(vqvae_checkpoint):
    """The parity check can fail: perturbing one reference weight changes the reference output."""
    _, state = vqvae_checkpoint
    video = random_video((1, 3, 8, 8, 8), seed=8)
    z = reference_impl.vqvae_quantizer_input(state, video, (4, 2, 2))
    changed = dict(state)
    key = "encoder.res_stack.2.block.8.attn_h.w_qs.weight"
    changed[key] = state[key] * 1.5
    assert relative_error(reference_impl.vqvae_quantizer_input(changed, video, (4, 2, 2)), z) > 1e-4

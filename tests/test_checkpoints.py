"""Tests for our checkpoint format (config.json + model.safetensors): exact round trips, half-precision
storage, pipeline folders, and clear errors for every way a folder can be wrong."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from videogpt_core import VQVAE, VideoGPT
from videogpt_core.models.checkpoints import CONFIG_NAME, WEIGHTS_NAME, load_models, save_pipeline


def tiny_vqvae() -> VQVAE:
    return VQVAE(embedding_dim=8, n_codes=16, n_hiddens=16, n_res_layers=1, downsample=(2, 2, 2),
                 sequence_length=4, resolution=8)


def trained_vqvae() -> VQVAE:
    """A VQ-VAE whose buffers (BatchNorm statistics, codebook EMA) are no longer at their initial values."""
    model = tiny_vqvae().train()
    model(random_video((2, 3, 4, 8, 8)))
    return model.eval()


def tiny_prior(vqvae: VQVAE | None = None) -> VideoGPT:
    vqvae = vqvae or tiny_vqvae()
    prior = VideoGPT.for_vqvae(vqvae, hidden_dim=24, n_heads=2, n_layers=2, n_classes=3,
                               class_names=["ball", "box", "cup"], action_dim=2, action_embed_dim=8,
                               n_cond_frames=1, frame_encoder_widths=(4, 4, 8, 6),
                               frame_encoder_blocks=(1, 1, 1, 1), cond_drop_prob=0.1)
    torch.nn.init.normal_(prior.fc_out.weight, std=0.5)
    return prior.eval()


def random_video(shape, seed: int = 0) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) - 0.5


def prior_inputs(prior: VideoGPT) -> dict:
    g = torch.Generator().manual_seed(3)
    return dict(codes=torch.randint(0, prior.n_codes, (2, *prior.latent_shape), generator=g),
                labels=torch.tensor([0, 2]), actions=torch.randn(2, prior.config.sequence_length, 2, generator=g),
                frames=random_video((2, 3, 1, 8, 8), seed=4))


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert sa[key].dtype == sb[key].dtype and torch.equal(sa[key], sb[key]), key


# ------------------------------------------------------------------------------------------------ round trips


def test_vqvae_round_trip_is_exact(tmp_path):
    model = trained_vqvae()
    assert model.codebook.initialized
    model.save_pretrained(tmp_path / "vq")
    assert sorted(p.name for p in (tmp_path / "vq").iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]  # no temp files
    loaded = VQVAE.from_pretrained(tmp_path / "vq").eval()
    assert loaded.config == model.config
    assert_same_state(model, loaded)
    video = random_video((2, 3, 4, 8, 8), seed=1)
    codes = model.encode(video)
    assert torch.equal(loaded.encode(video), codes)
    with torch.no_grad():
        assert torch.equal(loaded.decode(codes), model.decode(codes))


def test_prior_round_trip_is_exact(tmp_path):
    prior = tiny_prior()
    prior.save_pretrained(tmp_path / "prior")
    config = json.loads((tmp_path / "prior" / CONFIG_NAME).read_text())
    assert config["model_kind"] == "prior" and config["class_names"] == ["ball", "box", "cup"]
    assert config["latent_shape"] == [2, 4, 4]
    loaded = VideoGPT.from_pretrained(tmp_path / "prior").eval()
    assert loaded.config == prior.config
    assert_same_state(prior, loaded)
    inputs = prior_inputs(prior)
    with torch.no_grad():
        assert torch.equal(loaded(**inputs), prior(**inputs))


def test_saving_again_overwrites(tmp_path):
    first, second = tiny_vqvae(), trained_vqvae()
    first.save_pretrained(tmp_path)
    second.save_pretrained(tmp_path)
    assert_same_state(second, VQVAE.from_pretrained(tmp_path))


def test_half_precision_storage_round_trip(tmp_path):
    vqvae = trained_vqvae()
    prior = tiny_prior(vqvae)
    vqvae.save_pretrained(tmp_path / "vq", dtype=torch.float16)
    prior.save_pretrained(tmp_path / "prior", dtype=torch.float16)
    with safe_open(str(tmp_path / "vq" / WEIGHTS_NAME), "pt") as f:
        dtypes = {key: f.get_tensor(key).dtype for key in f.keys()}
    assert dtypes["codebook.embeddings"] == torch.float16
    assert dtypes["encoder.res_stack.0.block.0.num_batches_tracked"] == torch.int64  # integers stay
    assert (tmp_path / "vq" / WEIGHTS_NAME).stat().st_size < 0.6 * _float32_bytes(vqvae)

    for original, loaded in ((vqvae, VQVAE.from_pretrained(tmp_path / "vq")),
                             (prior, VideoGPT.from_pretrained(tmp_path / "prior"))):
        loaded.eval()
        for key, value in original.state_dict().items():
            got = loaded.state_dict()[key]
            assert got.dtype == value.dtype, key  # loaded back into the model's float32
            expected = value.half().to(value.dtype) if value.is_floating_point() else value
            assert torch.equal(got, expected), key  # exactly the fp16 rounding, nothing else

    loaded_vq = VQVAE.from_pretrained(tmp_path / "vq").eval()
    video = random_video((2, 3, 4, 8, 8), seed=1)
    codes = vqvae.encode(video)
    with torch.no_grad():
        reference, decoded = vqvae.decode(codes), loaded_vq.decode(codes)
    assert (decoded - reference).abs().max() < 1e-2 * reference.abs().max()
    loaded_prior = VideoGPT.from_pretrained(tmp_path / "prior").eval()
    inputs = prior_inputs(prior)
    with torch.no_grad():
        reference, logits = prior(**inputs), loaded_prior(**inputs)
    assert (logits - reference).abs().max() < 1e-2 * reference.abs().max()


def _float32_bytes(model: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def test_pipeline_folder_round_trip(tmp_path):
    vqvae = trained_vqvae()
    prior = tiny_prior(vqvae)
    save_pipeline(tmp_path / "pipe", vqvae, prior)
    assert (tmp_path / "pipe" / "vqvae" / CONFIG_NAME).is_file()
    assert (tmp_path / "pipe" / "prior" / WEIGHTS_NAME).is_file()
    loaded_vqvae, loaded_prior = load_models(tmp_path / "pipe")
    assert isinstance(loaded_vqvae, VQVAE) and isinstance(loaded_prior, VideoGPT)
    assert_same_state(vqvae, loaded_vqvae)
    assert_same_state(prior, loaded_prior)
    assert torch.equal(loaded_prior.codebook, loaded_vqvae.codebook.embeddings)


# ------------------------------------------------------------------------------------------------ errors


def test_loading_a_folder_of_the_wrong_kind_names_both_kinds(tmp_path):
    tiny_vqvae().save_pretrained(tmp_path / "vq")
    tiny_prior().save_pretrained(tmp_path / "prior")
    with pytest.raises(ValueError, match=r"config\.json: holds a 'vqvae' model, not a 'prior'"):
        VideoGPT.from_pretrained(tmp_path / "vq")
    with pytest.raises(ValueError, match=r"holds a 'prior' model, not a 'vqvae'"):
        VQVAE.from_pretrained(tmp_path / "prior")


def test_missing_folder_config_or_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such checkpoint folder"):
        VQVAE.from_pretrained(tmp_path / "nowhere")

    tiny_vqvae().save_pretrained(tmp_path / "no_config")
    (tmp_path / "no_config" / CONFIG_NAME).unlink()
    with pytest.raises(FileNotFoundError, match=r"no_config/config\.json: missing"):
        VQVAE.from_pretrained(tmp_path / "no_config")

    tiny_vqvae().save_pretrained(tmp_path / "no_weights")
    (tmp_path / "no_weights" / WEIGHTS_NAME).unlink()
    with pytest.raises(FileNotFoundError, match=r"no_weights/model\.safetensors: missing"):
        VQVAE.from_pretrained(tmp_path / "no_weights")


def test_pipeline_folder_given_for_a_model_says_which_subfolder(tmp_path):
    vqvae = tiny_vqvae()
    save_pipeline(tmp_path / "pipe", vqvae, tiny_prior(vqvae))
    with pytest.raises(FileNotFoundError, match=r"pipeline folder.*pipe/vqvae"):
        VQVAE.from_pretrained(tmp_path / "pipe")
    with pytest.raises(FileNotFoundError, match=r"pipeline folder.*pipe/prior"):
        VideoGPT.from_pretrained(tmp_path / "pipe")


def test_load_models_needs_both_parts(tmp_path):
    tiny_vqvae().save_pretrained(tmp_path / "half" / "vqvae")
    with pytest.raises(FileNotFoundError, match=r"not a pipeline folder \(no prior/ inside\)"):
        load_models(tmp_path / "half")
    with pytest.raises(FileNotFoundError, match="not a pipeline folder"):
        load_models(tmp_path / "half" / "vqvae")


@pytest.mark.parametrize("corrupt", ["garbage", "truncated", "empty"])
def test_corrupt_weights_file_is_named(tmp_path, corrupt):
    tiny_vqvae().save_pretrained(tmp_path)
    weights = tmp_path / WEIGHTS_NAME
    data = weights.read_bytes()
    weights.write_bytes({"garbage": b"\x00\xffnot safetensors at all" * 10,
                         "truncated": data[: len(data) // 2],
                         "empty": b""}[corrupt])
    with pytest.raises(ValueError, match=r"model\.safetensors: not a readable safetensors file"):
        VQVAE.from_pretrained(tmp_path)


def test_corrupt_or_foreign_config_is_named(tmp_path):
    tiny_vqvae().save_pretrained(tmp_path)
    config_path = tmp_path / CONFIG_NAME
    config = json.loads(config_path.read_text())

    config_path.write_text("{ not json")
    with pytest.raises(ValueError, match=r"config\.json: not valid JSON"):
        VQVAE.from_pretrained(tmp_path)

    config_path.write_text(json.dumps({**config, "n_layers": 3}))
    with pytest.raises(ValueError, match=r"config\.json: unknown VQVAEConfig fields \['n_layers'\]"):
        VQVAE.from_pretrained(tmp_path)

    config_path.write_text(json.dumps({k: v for k, v in config.items() if k != "model_kind"}))
    with pytest.raises(ValueError, match="not a 'vqvae'"):  # no model_kind: not one of ours
        VQVAE.from_pretrained(tmp_path)

    config_path.write_text(json.dumps({**config, "downsample": [3, 2, 2]}))
    with pytest.raises(ValueError, match="powers of two"):
        VQVAE.from_pretrained(tmp_path)


def test_weights_that_do_not_match_the_config_name_the_tensors(tmp_path):
    tiny_vqvae().save_pretrained(tmp_path)
    config_path = tmp_path / CONFIG_NAME
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "n_codes": 32}))
    with pytest.raises(ValueError, match=r"model\.safetensors: does not match the vqvae config: mismatched shapes "
                                         r".*codebook\.embeddings: file \(16, 8\) vs model \(32, 8\)"):
        VQVAE.from_pretrained(tmp_path)

    config_path.write_text(json.dumps({**config, "n_res_layers": 2}))
    with pytest.raises(ValueError, match=r"missing \['decoder\.res_stack\.1\.block"):
        VQVAE.from_pretrained(tmp_path)


def test_missing_and_unexpected_tensors_are_listed(tmp_path):
    model = tiny_vqvae()
    model.save_pretrained(tmp_path)
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "codebook.N"}
    state["extra.weight"] = torch.zeros(2)
    save_file(state, str(tmp_path / WEIGHTS_NAME))
    with pytest.raises(ValueError, match=r"missing \['codebook\.N'\]; unexpected \['extra\.weight'\]"):
        VQVAE.from_pretrained(tmp_path)


def test_saved_files_hold_no_pickle(tmp_path):
    tiny_prior().save_pretrained(tmp_path)
    config = json.loads((tmp_path / CONFIG_NAME).read_text())  # plain JSON
    assert isinstance(config, dict)
    with safe_open(str(tmp_path / WEIGHTS_NAME), "pt") as f:
        assert f.metadata() == {"format": "pt"}
        assert "codebook" in set(f.keys())
    assert not any(Path(tmp_path).glob("*.pt")) and not any(Path(tmp_path).glob("*.bin"))

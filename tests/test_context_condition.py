"""A vector per clip (say a text embedding) as a condition, end to end: an HDF5 array, the code cache, a prior
trained on it, a pipeline that samples from it."""
import h5py
import numpy as np
import pytest
import torch

from training_helpers import QUIET, TINY_VQVAE, prior_configs
from videogpt_core import VQVAE, load_pipeline
from videogpt_core.data import CodeDataset, HDF5VideoDataset
from videogpt_core.data.codes import encode_dataset
from videogpt_core.models.conditions import prior_config_from_data
from videogpt_core.training import train_prior

N_VIDEOS, N_FRAMES, WIDTH = 8, 4, 3


def make_videos(path):
    """Videos whose brightness is the first entry of their context vector."""
    context = np.random.default_rng(0).uniform(0, 1, (N_VIDEOS, WIDTH)).astype(np.float32)
    frames = np.repeat((context[:, 0] * 255).astype(np.uint8), N_FRAMES)[:, None, None, None]
    with h5py.File(path, "w") as file:
        file["train_data"] = np.broadcast_to(frames, (N_VIDEOS * N_FRAMES, 16, 16, 3))
        file["train_idx"] = np.arange(N_VIDEOS, dtype=np.int64) * N_FRAMES
        file["train_context"] = context
    return context


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("context")
    context = make_videos(root / "videos.hdf5")
    torch.manual_seed(0)
    vqvae = VQVAE(**TINY_VQVAE)
    videos = HDF5VideoDataset(root / "videos.hdf5", sequence_length=4, train=False, split="train")
    codes = CodeDataset(encode_dataset(vqvae, videos, root / "codes", n_cond_frames=0, progress=False))
    options = dict(steps=4, batch_size=4, lr=1e-3, warmup=1, hidden_dim=24, n_heads=2, n_layers=1,
                   conditions=("context",), **QUIET)
    train_prior(*prior_configs(root / "run", **options), train_dataset=codes, vqvae=vqvae)
    return load_pipeline(root / "run" / "model", device="cpu"), codes, context


def test_the_code_cache_carries_the_vectors_and_the_prior_takes_their_width(trained):
    pipeline, codes, context = trained
    assert torch.equal(codes[5]["context"], torch.from_numpy(context[5]))
    assert pipeline.prior.config.context_dim == WIDTH


def test_the_vector_changes_the_logits_and_the_samples(trained):
    pipeline, codes, _ = trained
    prior, batch = pipeline.prior, codes[0]["codes"][None]
    logits = [prior(batch, context=torch.tensor([vector])) for vector in ([0.0, 0.0, 0.0], [1.0, -1.0, 2.0])]
    assert not torch.allclose(*logits)
    samples = [pipeline.generate(1, context=vector, seed=3).codes for vector in ([0.0] * 3, [5.0, -5.0, 5.0])]
    assert not torch.equal(*samples)


def test_a_missing_or_wrong_vector_is_a_clear_error(trained):
    pipeline = trained[0]
    with pytest.raises(ValueError, match=r"context \(3,\) is required"):
        pipeline.generate(1)
    with pytest.raises(ValueError, match="context must be finite floats, 3 per clip"):
        pipeline.generate(1, context=[1.0, 2.0])
    with pytest.raises(ValueError, match="context must be finite floats"):
        pipeline.generate(1, context=[1.0, float("nan"), 0.0])


def test_training_on_a_context_the_codes_lack_is_refused():
    with pytest.raises(ValueError, match="--condition context: the codes carry no context vector per clip"):
        prior_config_from_data(("context",), [{"codes": torch.zeros(2, 4, 4, dtype=torch.long)}], {})

"""The action range a prior was trained on: measured from the training data, written into the prior's config
by train-prior, and read back by the pipeline (which refuses actions outside it: see test_pipeline.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from training_helpers import prior_configs
from videogpt_core.models.action_range import action_range_of, check_actions_in_range
from videogpt_core.models.prior import VideoGPT
from videogpt_core.models.vqvae import VQVAE
from videogpt_core.training import train_prior

TINY_VQVAE = dict(embedding_dim=8, n_codes=16, n_hiddens=16, n_res_layers=1, downsample=(2, 4, 4),
                  sequence_length=4, resolution=16)


class CodesWithActions(Dataset):
    """Code grids (2, 4, 4) with one (dx, dy) row per frame; dx spans [-2.5, 1.5], dy [0, 3]."""

    class_names = None
    action_dim = 2

    def __init__(self, n: int):
        self.n = n
        self.meta = {"n_codes": 16, "latent_shape": [2, 4, 4], "class_names": None, "action_dim": 2}
        rows = np.random.default_rng(0).uniform(size=(n, 4, 2))
        self.actions = np.stack([-2.5 + 4.0 * rows[..., 0], 3.0 * rows[..., 1]], axis=-1).astype(np.float32)
        self.actions[0, 0] = [-2.5, 0.0]
        self.actions[1, 1] = [1.5, 3.0]

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        codes = torch.arange(32).reshape(2, 4, 4) % 16
        return {"codes": codes, "actions": torch.from_numpy(self.actions[index])}


class CodeCacheLike:
    """What CodeDataset offers: memory-mapped arrays by name."""

    def __init__(self, actions):
        self.arrays = {"codes": np.zeros((len(actions), 2, 4, 4)), "actions": actions}


def test_range_of_a_data_set_walked_item_by_item():
    assert action_range_of(CodesWithActions(6)) == [[-2.5, 1.5], [0.0, 3.0]]


def test_range_of_a_code_cache_is_read_from_its_array():
    actions = np.zeros((3, 4, 2), np.float32)
    actions[1, 2] = [-3.0, 0.5]
    actions[2, 0] = [2.0, -1.0]
    assert action_range_of(CodeCacheLike(actions)) == [[-3.0, 2.0], [-1.0, 0.5]]
    assert action_range_of([{"codes": 0}]) is None


def test_check_names_row_column_and_range_and_allows_float32_rounding():
    bounds = [[-3.0, 3.0], [-1.0, 1.0]]
    check_actions_in_range(np.float32([[3.0, -1.0], [np.float32(3.0) * (1 + 1e-7), 1.0]]), bounds)
    check_actions_in_range(np.float32([[1e9, 0.0]]), None)  # nothing recorded: nothing to check
    with pytest.raises(ValueError, match=r"action row 2, dy = 1.5 is outside the range this model was trained on "
                                         r"\(dx in \[-3, 3\], dy in \[-1, 1\]\)"):
        check_actions_in_range(np.float32([[0, 0], [0, 1.5]]), bounds, ["dx", "dy"])


def test_train_prior_records_the_training_actions_range_in_the_config(tmp_path):
    torch.manual_seed(0)
    vqvae = VQVAE(**TINY_VQVAE)
    args = {"steps": 2, "batch_size": 4, "lr": 1e-3, "warmup": 1, "hidden_dim": 24,
            "n_heads": 2, "n_layers": 1, "conditions": ("actions",), "progress": False, "num_workers": 0, "log_every": 1,
            "val_every": 1000, "sample_every": 1000, "save_every": 1000}
    train_prior(*prior_configs(tmp_path / "prior", **args), train_dataset=CodesWithActions(8), vqvae=vqvae)
    config = VideoGPT.read_config(tmp_path / "prior" / "model" / "prior")
    assert config.action_dim == 2
    np.testing.assert_allclose(config.action_range, [[-2.5, 1.5], [0.0, 3.0]], rtol=1e-6)


def test_the_shipped_pusher_prior_records_the_worlds_speed_limit():
    from pathlib import Path

    from videogpt_core.data.worlds.pusher import MAX_SPEED

    config = VideoGPT.read_config(Path(__file__).resolve().parents[1] / "checkpoints" / "pusher" / "prior")
    # The world clips the (dx, dy) command to MAX_SPEED: each component lies within +-MAX_SPEED.
    assert config.action_range == [[-MAX_SPEED, MAX_SPEED]] * 2

"""Deterministic data order: every batch, and every item's randomness, is a function of (seed, epoch,
position), so a resumed run sees exactly the batches an uninterrupted one would."""
from __future__ import annotations

import random
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers (numpy's SeedSequence hashing)."""
    state = np.random.SeedSequence([int(p) & 0xFFFFFFFFFFFFFFFF for p in parts]).generate_state(2, np.uint64)
    return int(state[0] >> np.uint64(1))


class EpochBatchSampler(Sampler):
    """Batches of one process for one epoch: the epoch's permutation depends only on (seed, epoch),
    each global batch of batch_size * world_size items is split between the processes, and
    iteration can start at any batch (to skip what a resumed run already consumed).

    Yields lists of (dataset index, item seed): the seed makes any per-item randomness of the
    dataset (random clip windows, augmentation) a function of the position in the epoch too."""

    def __init__(self, n_items: int, batch_size: int, seed: int, epoch: int, rank: int = 0,
                 world_size: int = 1, start_batch: int = 0):
        self.n_items, self.batch_size, self.seed, self.epoch = n_items, batch_size, seed, epoch
        self.rank, self.world_size, self.start_batch = rank, world_size, start_batch
        self.batches_per_epoch = n_items // (batch_size * world_size)

    def __len__(self) -> int:
        return max(0, self.batches_per_epoch - self.start_batch)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n_items)
        item_seed_base = mix_seed(self.seed, self.epoch, 0x5EED)
        global_batch = self.batch_size * self.world_size
        for b in range(self.start_batch, self.batches_per_epoch):
            first = b * global_batch + self.rank * self.batch_size
            yield [(int(order[p]), (item_seed_base + p) % 2**63) for p in range(first, first + self.batch_size)]


class SeededItems(Dataset):
    """Wraps a data set so that item (index, seed) is produced with python / numpy / torch CPU RNGs
    seeded by `seed`, and the caller's RNG streams are left as they were."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        index, seed = key
        py_state, np_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
        try:
            random.seed(seed)
            np.random.seed(seed % 2**32)
            torch.default_generator.manual_seed(seed)  # CPU only: never touches the GPU's dropout stream
            return self.dataset[index]
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
            torch.set_rng_state(torch_state)


def validation_keys(n_items: int, batch_size: int, max_batches: int, seed: int, rank: int,
                    world_size: int) -> list[list[tuple[int, int]]]:
    """One process's validation batches: a fixed random subset, the same at every validation."""
    n_per_process = min(n_items // world_size, max_batches * batch_size)
    order = np.random.default_rng([seed, 0xE7A1]).permutation(n_items)
    mine = order[rank * n_per_process:(rank + 1) * n_per_process]
    keys = [(int(i), mix_seed(seed, 0xE7A1, int(i))) for i in mine]
    return [keys[i:i + batch_size] for i in range(0, len(keys), batch_size)]


def media_keys(n_items: int, n_videos: int, seed: int) -> list[tuple[int, int]]:
    """The fixed examples shown in TensorBoard."""
    return [(i, mix_seed(seed, 0x3ED1A, i)) for i in range(min(n_videos, n_items))]

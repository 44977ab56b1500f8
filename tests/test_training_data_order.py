"""Deterministic data order: batches and per-item randomness as functions of (seed, epoch, position)."""
import torch

from training_helpers import MovingSquares
from videogpt_core.training.data_order import EpochBatchSampler, SeededItems


def test_epoch_batch_sampler_order_split_and_skip():
    def batches(**kw):
        return list(EpochBatchSampler(n_items=20, batch_size=3, seed=7, **kw))

    epoch0 = batches(epoch=0)
    assert len(epoch0) == 6 and all(len(b) == 3 for b in epoch0)
    indices = [i for b in epoch0 for i, _ in b]
    assert len(set(indices)) == 18
    assert batches(epoch=0) == epoch0  # a function of (seed, epoch)
    assert [i for b in batches(epoch=1) for i, _ in b] != indices
    assert batches(epoch=0, start_batch=4) == epoch0[4:]
    # Two processes split each global batch of 6: disjoint, and together the 1-process order.
    rank0 = batches(epoch=0, rank=0, world_size=2)
    rank1 = batches(epoch=0, rank=1, world_size=2)
    assert len(rank0) == len(rank1) == 3
    together = [k for b0, b1 in zip(rank0, rank1) for k in b0 + b1]
    assert together == [k for b in epoch0 for k in b]


def test_seeded_items_are_deterministic_and_leave_the_rng_alone():
    items = SeededItems(MovingSquares(4))
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = items[(1, 99)]["video"]
    assert torch.equal(torch.get_rng_state(), before)
    torch.rand(5)
    assert torch.equal(items[(1, 99)]["video"], first)
    assert not torch.equal(items[(1, 100)]["video"], first)

"""The python / numpy / torch random streams: captured into checkpoints, restored on resume, and kept
unchanged around work (validation, media) that must not shift the training run's randomness."""
from __future__ import annotations

import contextlib
import random
from typing import Any

import numpy as np
import torch


def capture_rng_states() -> dict[str, Any]:
    np_state = np.random.get_state()
    states = {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    n = states["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


@contextlib.contextmanager
def rng_preserved():
    """Run something (validation, media) without shifting the training run's random streams."""
    states = capture_rng_states()
    try:
        yield
    finally:
        restore_rng_states(states)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)

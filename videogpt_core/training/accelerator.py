"""The device and precision of a run, through Hugging Face Accelerate: CPU, one GPU, or several
processes (`accelerate launch` / `torchrun`)."""
from __future__ import annotations

import os

import torch

from videogpt_core.models.devices import cpu_supports_bf16


def has_accelerator_device() -> bool:
    return torch.cuda.is_available() or torch.backends.mps.is_available() \
        or (hasattr(torch, "xpu") and torch.xpu.is_available())


def resolve_mixed_precision(mode: str) -> str:
    """auto -> bf16 where it is fast (a GPU with bf16, a CPU with native bf16 instructions), else no."""
    if mode == "auto":
        if torch.cuda.is_available():
            return "bf16" if torch.cuda.is_bf16_supported() else "no"
        # On a CPU with native bf16 matrix instructions bf16 autocast makes both stages' steps faster at the
        # same loss (BENCHMARKS.md); without them it is slower than float32.
        return "bf16" if not has_accelerator_device() and cpu_supports_bf16() else "no"
    if mode == "fp16" and not torch.cuda.is_available():
        raise ValueError("--mixed-precision fp16 needs a CUDA GPU; use bf16 or no on the CPU")
    return mode


def make_accelerator(mixed_precision: str, find_unused_parameters: bool):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import DistributedDataParallelKwargs

    mixed_precision = resolve_mixed_precision(mixed_precision)
    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision", mixed_precision) != mixed_precision \
            and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        # Accelerate keeps one precision per process; a second run in one process (tests,
        # notebooks) may ask for another, which is harmless to reset when nothing is distributed.
        AcceleratorState._reset_state(reset_partial_state=False)
    # Accelerate takes the multi-process CPU (gloo) path of torchrun / accelerate launch only when
    # told cpu=True; without a GPU-type device that is what we want anyway.
    return Accelerator(
        cpu=not has_accelerator_device(),
        mixed_precision=mixed_precision,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=find_unused_parameters)],
    )

"""Which device to run on, and whether this CPU computes bfloat16 natively."""
from __future__ import annotations

from pathlib import Path

import torch


def cpu_supports_bf16() -> bool:
    """True where the CPU has native bfloat16 matrix instructions (otherwise bf16 is slower than float32)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The device to run on ('cuda' when available, else 'cpu'), or a ValueError saying what is available."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device {device!r} is not a torch device; use 'cpu' or 'cuda' (or 'cuda:N')") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: this torch build sees no CUDA GPU (torch {torch.__version__}, "
                             "CUDA " + (torch.version.cuda or "not built in") + "); use --device cpu")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: there are only {torch.cuda.device_count()} CUDA device(s)")
    elif resolved.type != "cpu":
        raise ValueError(f"device {device!r} is not supported; use 'cpu' or 'cuda'")
    return resolved

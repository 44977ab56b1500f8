"""Non-finite logits: sampling from NaN / inf logits draws code 0 everywhere (a flat-colour video with no
error), so the sampler checks each finished latent slice's last logits and stops with this error instead."""
from __future__ import annotations

import torch


class NonFiniteLogitsError(ValueError):
    """The prior produced NaN or infinite logits (broken weights, or inputs far outside its training data)."""


def check_finite_logits(logits: torch.Tensor, slices_done: int) -> None:
    """One host sync per latent slice, not per token."""
    if not bool(torch.isfinite(logits).all()):
        raise NonFiniteLogitsError(f"the prior produced NaN or infinite logits in latent slice {slices_done}; "
                                   "its weights or the conditioning inputs are broken")


__all__ = ["NonFiniteLogitsError", "check_finite_logits"]

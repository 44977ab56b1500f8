"""Exact multi-token sampling: cheap proposals for the next codes, scored together in one verify pass and
accepted by speculative sampling, so the samples keep exactly the distribution of one-token decoding.

A draft here is deterministic: the next codes are guessed by copying codes already sampled (the left
neighbour, the code one row above, or the same place one latent slice earlier). For a proposal d with
probability p(d) under the filtered (temperature / top-k / top-p / guidance) distribution the rule
"accept x with probability min(1, p(x) / q(x)); on reject draw from norm(max(0, p - q))" becomes, with
q a point mass on d: accept d with probability p(d), else draw from p with d removed. Each position's code
is then an exact draw from p given the codes before it, whatever was proposed.

A batch advances together: a pass keeps, for every sample, the codes up to the first position where any
sample rejected; at that position each sample keeps what it got (its accepted proposal or its residual
draw), which is a draw from p either way. Later positions are discarded and sampled again, so no code is
kept or dropped because of its own value.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

DRAFTS = ("left", "above", "previous-slice")


@dataclass
class SpeculationStats:
    """What speculation did in one generation (all samples of a batch advance together)."""

    passes: int = 0  # verify passes (each samples at least one code per sample)
    positions: int = 0  # positions sampled by those passes
    proposed: int = 0  # proposals scored (per position, summed over the samples of the batch)
    accepted: int = 0  # of those, accepted

    @property
    def acceptance(self) -> float:
        """Share of scored proposals accepted (0 when none were scored)."""
        return self.accepted / self.proposed if self.proposed else 0.0

    @property
    def positions_per_pass(self) -> float:
        return self.positions / self.passes if self.passes else 0.0

    def add_pass(self, kept: int, accepted: torch.Tensor) -> None:
        """Count one verify pass that kept `kept` proposals (accepted: see accept_proposals)."""
        self.passes += 1
        self.positions += kept + 1
        self.proposed += accepted.numel()
        self.accepted += int(accepted.sum())

    def as_dict(self) -> dict:
        return dict(passes=self.passes, positions=self.positions, proposed=self.proposed, accepted=self.accepted,
                    acceptance=self.acceptance, positions_per_pass=self.positions_per_pass)


def check_draft(draft: str, draft_tokens: int | None) -> None:
    if draft not in DRAFTS:
        raise ValueError(f"draft must be one of {', '.join(DRAFTS)}, got {draft!r}")
    if draft_tokens is not None and (isinstance(draft_tokens, bool) or not isinstance(draft_tokens, int)
                                     or draft_tokens < 1):
        raise ValueError(f"draft_tokens must be a whole number >= 1 (codes proposed per verify pass) or None "
                         f"(one code per step), got {draft_tokens!r}")


def propose(codes: torch.Tensor, last: int, count: int, draft: str,
            latent_shape: tuple[int, int, int]) -> torch.Tensor:
    """Guesses (B, count) for positions last+1 .. last+count of the flat codes (B, L), filled up to `last`.

    Each guess is used only if every guess before it was accepted, so a guess may copy earlier guesses.
    """
    _, h, w = latent_shape
    offset = {"left": 1, "above": w, "previous-slice": h * w}[draft]
    first = last + 1 - offset
    if first < 0 or count > offset:  # nothing to copy there yet (or the copies would run past `last`):
        return codes[:, last:last + 1].expand(-1, count)  # the left neighbour, repeated
    if offset == 1:
        return codes[:, last:last + 1].expand(-1, count)
    return codes[:, first:first + count]


def draw_from_probs(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One index per row of probabilities (..., n): argmax(probs / Exponential(1)), an exact draw."""
    noise = torch.empty_like(probs).exponential_(generator=generator)
    return (probs / noise).argmax(-1)


def accept_proposals(probs: torch.Tensor, proposals: torch.Tensor,
                     generator: torch.Generator | None) -> tuple[int, torch.Tensor, torch.Tensor]:
    """Speculative sampling against point-mass proposals.

    probs (B, k, n): the filtered distributions of the k verified positions; proposals (B, k-1): the
    codes proposed for the first k-1 of them (the last position has no proposal: it is where a pass that
    accepts everything draws its extra code). Returns (kept, next_code, accepted): the batch keeps the
    proposals of its first `kept` positions and then `next_code` (B,) at position index `kept`;
    accepted (B, kept + 1) bool says which samples accepted their proposal at each kept position.
    """
    batch, k, _ = probs.shape
    n_proposed = k - 1
    if n_proposed:
        p_proposed = probs[:, :n_proposed].gather(-1, proposals[..., None]).squeeze(-1)  # (B, k-1)
        uniform = torch.rand(p_proposed.shape, generator=generator, device=probs.device, dtype=probs.dtype)
        accept = uniform < p_proposed
        all_accept = accept.all(0)
        kept = n_proposed if bool(all_accept.all()) else int(all_accept.to(torch.int8).argmin())
    else:
        accept = torch.zeros(batch, 0, dtype=torch.bool, device=probs.device)
        kept = 0
    target = probs[:, kept]
    if kept == n_proposed:  # everything accepted (or nothing proposed): a plain draw at the next position
        return kept, draw_from_probs(target, generator), accept
    proposal = proposals[:, kept]
    residual = target.scatter(-1, proposal[:, None], 0.0)  # p with the rejected code removed
    drawn = draw_from_probs(residual, generator)
    accepted_here = accept[:, kept]
    return kept, torch.where(accepted_here, proposal, drawn), accept[:, :kept + 1]

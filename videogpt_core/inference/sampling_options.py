"""What a user chooses about sampling: `SamplingOptions`, checked when made and used unchanged everywhere (library,
CLI, demo, evaluation, benchmarks), and the logit processors it runs.

A knob is one field here (its help text and type in the field's metadata: the CLI takes its argument from
them) and, when it shapes the distribution, one processor. A processor sees the logits of the next position
(B, n_codes) and the codes drawn so far (B, n), and returns new logits.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

Processor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def knob(default, help: str, type: type = float, metavar: str = "X"):
    """A field of SamplingOptions with what its command-line argument needs."""
    return field(default=default, metadata=dict(help=help, type=type, metavar=metavar))


def _number(name: str, value, rule: str) -> float:
    """A finite real number, or a ValueError naming the option; bools are refused, as `True` for 1.0 hides a
    mistake (a flag passed where a number belongs)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        kind = " (a bool, not a number)" if isinstance(value, (bool, np.bool_)) else ""
        raise ValueError(f"{name} must be {rule}, got {value!r}{kind}")
    return value


@dataclass(frozen=True, kw_only=True)
class SamplingOptions:
    temperature: float = knob(1.0, "> 0; lower is more conservative (1)", metavar="T")
    top_k: int | None = knob(None, "keep only the k most likely codes", int, "K")
    top_p: float | None = knob(None, "nucleus sampling: keep the most likely codes up to this probability, in (0, 1]",
                               metavar="P")
    cfg_scale: float | None = knob(None, "classifier-free guidance on the class / actions (1 = off, > 1 = stronger)",
                                   metavar="S")
    repetition_penalty: float | None = knob(None, "> 0; above 1 makes the codes already in the window less likely "
                                                  "(1 = off)", metavar="R")

    def __post_init__(self):
        rule = "a finite number > 0"
        if _number("temperature", self.temperature, rule) <= 0:
            raise ValueError(f"temperature must be {rule}, got {self.temperature!r}")
        if self.top_k is not None:
            rule = "a whole number >= 1 (or None)"  # a UI slider sends 8.0: any whole number will do
            k = _number("top_k", self.top_k, rule)
            if k != int(k) or k < 1:
                raise ValueError(f"top_k must be {rule}, got {k!r}")
            object.__setattr__(self, "top_k", int(k))
        rule = "a number in (0, 1] (or None)"
        if self.top_p is not None and not 0 < _number("top_p", self.top_p, rule) <= 1:
            raise ValueError(f"top_p must be {rule}, got {self.top_p!r}")
        rule = "a finite number >= 0 (or None)"
        if self.cfg_scale is not None and _number("cfg_scale", self.cfg_scale, rule) < 0:
            raise ValueError(f"cfg_scale must be {rule}, got {self.cfg_scale!r}")
        rule = "a finite number > 0 (or None)"
        if self.repetition_penalty is not None and _number("repetition_penalty", self.repetition_penalty, rule) <= 0:
            raise ValueError(f"repetition_penalty must be {rule}, got {self.repetition_penalty!r}")

    def check_for(self, prior) -> None:
        """Refuse options this model cannot use."""
        if self.cfg_scale is not None and not prior.config.cond_dim:
            raise ValueError("cfg_scale needs a class- or action-conditional model; this one has neither")

    @property
    def guided(self) -> bool:
        return self.cfg_scale is not None and self.cfg_scale != 1.0

    def replace(self, **changes) -> "SamplingOptions":
        """A copy with some settings changed (checked as a new one)."""
        return dataclasses.replace(self, **changes)

    def processors(self) -> list[Processor]:
        """The logit processors of these options, in the order they run."""
        processors: list[Processor] = [lambda logits, codes: logits.float() / self.temperature]
        if self.repetition_penalty is not None and self.repetition_penalty != 1.0:
            processors.append(lambda logits, codes: penalize_repeats(logits, codes, self.repetition_penalty))
        if self.top_k is not None:
            processors.append(lambda logits, codes: keep_top_k(logits, self.top_k))
        if self.top_p is not None and self.top_p < 1.0:
            processors.append(lambda logits, codes: keep_top_p(logits, self.top_p))
        return processors

    # ---- the command line ---------------------------------------------------------------------------

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
        """One --option per field, with its help text and type."""
        for option in dataclasses.fields(cls):
            meta = option.metadata
            parser.add_argument("--" + option.name.replace("_", "-"), type=meta["type"], default=option.default,
                                metavar=meta["metavar"], help=meta["help"])

    @classmethod
    def from_arguments(cls, args: argparse.Namespace) -> "SamplingOptions":
        return cls(**{option.name: getattr(args, option.name) for option in dataclasses.fields(cls)})

    def command_words(self) -> list[str]:
        """The arguments that make these options (those left at their defaults omitted)."""
        return [word for option in dataclasses.fields(self) if getattr(self, option.name) != option.default
                for word in ("--" + option.name.replace("_", "-"), str(getattr(self, option.name)))]


def penalize_repeats(logits: torch.Tensor, codes: torch.Tensor, penalty: float) -> torch.Tensor:
    """The logits of codes already drawn (B, n) divided by the penalty where positive, multiplied where
    negative (CTRL's rule): a penalty above 1 makes them less likely whatever their sign."""
    if not codes.shape[1]:
        return logits
    drawn = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, codes, True)
    penalized = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(drawn, penalized, logits)


def keep_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Only the k largest logits stay finite."""
    if k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def keep_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Only the smallest set of codes whose probability reaches p stays finite."""
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    cumulative = sorted_logits.softmax(-1).cumsum(-1)
    # Drop a code when the codes ranked above it already reach p (the first one always stays).
    drop_sorted = (cumulative - sorted_logits.softmax(-1)) >= p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def process_logits(logits: torch.Tensor, codes: torch.Tensor, options: SamplingOptions) -> torch.Tensor:
    """Run the options' processors on the logits of the next position, given the codes drawn so far."""
    for processor in options.processors():
        logits = processor(logits, codes)
    return logits

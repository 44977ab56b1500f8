"""How a pipeline runs the prior's one-token decode step: eager, compiled for the CPU, or compiled for CUDA graphs.

The mode belongs to the pipeline, not to the prior: two pipelines may share one prior and decode it
differently. "eager" and "compiled" take the position as a Python int and read only the filled part of the
cache, so a token costs more the further it stands. "whole_cache" and "cuda_graph" have static shapes: they
take the position as a (1,) tensor and read the whole cache under a mask, so every token costs the same
wherever it stands (what a player's steps want: the first steps of a play cost what its later ones do). A
CUDA-graph step also wants a decode state kept at fixed addresses (`VideoGPT.start_decoding(static=True)`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from videogpt_core.models.conditions import Conditions

DECODE_MODES = ("eager", "compiled", "whole_cache", "cuda_graph")


@dataclass(frozen=True)
class DecodeStep:
    mode: str
    run: Callable  # (state, previous codes (B,), position) -> logits (B, n_codes), as VideoGPT.decode_step

    @property
    def static(self) -> bool:
        """Positions as tensors, the whole cache read under a mask."""
        return self.mode in ("whole_cache", "cuda_graph")

    @property
    def kept_states(self) -> bool:
        """States at fixed addresses, kept by the prior from one generation to the next (the CUDA-graph step)."""
        return self.mode == "cuda_graph"

    @property
    def compiled(self) -> bool:
        return self.mode != "eager"

    @classmethod
    def build(cls, prior, mode: str) -> "DecodeStep":
        if mode not in DECODE_MODES:
            raise ValueError(f"decode mode must be one of {', '.join(DECODE_MODES)}, got {mode!r}")
        step = prior.decode_step
        # isolate_recompiles: every prior's step is the one code object VideoGPT.decode_step, and dynamo would
        # count all priors' graphs against one limit (8) and look each call up among all of them; a demo
        # serving four models needs each prior's graphs kept apart.
        if mode == "cuda_graph":
            # Static shapes (the whole cache under a mask; a graph per batch size), so a CUDA graph recorded
            # once replays for every token.
            step = torch.compile(step, mode="reduce-overhead", fullgraph=True, dynamic=False, isolate_recompiles=True)
        elif mode in ("compiled", "whole_cache"):
            # Compiling fuses the step's few hundred small ops (BAIR size, int8: 12.4 -> 10.2 ms per token here).
            # Dynamic shapes: "compiled" reads only the filled part of the cache, so its length varies; both keep
            # the batch dynamic (batch 1 and batches from 2 up each get one graph). "whole_cache" reads a cache
            # whose length never changes, so one graph serves every position.
            step = torch.compile(step, fullgraph=True, dynamic=True, isolate_recompiles=True)
        return cls(mode, step)

    @classmethod
    def eager(cls, prior) -> "DecodeStep":
        return cls("eager", prior.decode_step)

    def warm(self, prior, batches: tuple[int, ...], quantize: str | None = None) -> None:
        """Run the step on dummy inputs for these numbers of sequences, so that a compiled step compiles now
        (every graph a generation of those batch sizes needs), not in a user's first generation."""
        cfg, device = prior.config, prior.fc_in.weight.device
        for batch in batches:
            state = prior.start_decoding(batch, Conditions.zeros(cfg, batch, device), quantize=quantize,
                                         static=self.kept_states)
            codes = prior.prefill(state).argmax(-1)
            if self.static:  # one graph for every position; CUDA graph trees run it once, then record it
                for position in (1, 2, 3):
                    self.run(state, codes, torch.full((1,), position, device=device))
                state.release()  # a kept state: generations reuse it, and the graph recorded on its addresses
            else:  # the last position gets a graph of its own: its view of the cache is the whole cache
                for position in (1, cfg.seq_len - 1):
                    self.run(state, codes, position)

    def where(self, position: int, position_ids: torch.Tensor) -> int | torch.Tensor:
        """The position as this step takes it."""
        return position_ids[position:position + 1] if self.static else position


def default_decode_mode(compile: bool, device: torch.device, played: bool = False) -> str:
    """compile=True: CUDA graphs on a GPU; elsewhere the dynamic-shape compile, or for a model that is played
    (per-frame actions) the whole-cache one, whose steps cost the same however far a play has gone."""
    if not compile:
        return "eager"
    if device.type == "cuda":
        return "cuda_graph"
    return "whole_cache" if played else "compiled"

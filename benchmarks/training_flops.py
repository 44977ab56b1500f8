"""Training-step FLOPS against this machine's bf16 matmul ceiling, for `python -m benchmarks.training --flops`.

Each configuration's step (forward + backward + gradient clipping + AdamW, as the trainer runs it) is counted
once with FlopCounterMode and timed between two 2048x2048 bf16 matmuls in the same process, recipes in turn
every round: a busy machine slows the step and its ceiling alike, so the percentage stays comparable.
"""
from __future__ import annotations

import dataclasses
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import (FlopCounterMode, flop_registry, register_flop_formula, sdpa_backward_flop_count,
                                      sdpa_flop_count)

from benchmarks.common import autocast
from videogpt_core.models.config import VideoGPTConfig, VQVAEConfig, config_from_dict
from videogpt_core.models.prior import VideoGPT
from videogpt_core.models.vqvae import VQVAE
from videogpt_core.training.optimization import adamw
from videogpt_core.training.prior_task import PriorTask
from videogpt_core.training.trainer import LossModule
from videogpt_core.training.vqvae_task import VQVAETask

CEILING_SIZE = 2048
CONFIGURATIONS = ("world-prior", "frame-prior", "world-vqvae", "frame-vqvae")
DESCRIPTIONS = {
    "world-prior": "the checkpoint's prior (first-frame cross-attention, actions)",
    "frame-prior": "per-frame prior of the same width: latents (16, 8, 8), actions, no cross-attention",
    "world-vqvae": "the checkpoint's VQ-VAE",
    "frame-vqvae": "causal per-frame VQ-VAE: 64 hiddens, 2 residual blocks, downsample (1, 8, 8), 1024 codes",
}
COLUMNS = [("configuration", "configuration"), ("recipe", "recipe"), ("batch", "batch"),
           ("gflop_per_step", "GFLOP/step"), ("ms_per_step", "ms/step"), ("gflops", "GFLOPS"),
           ("ceiling_gflops", "ceiling GFLOPS"), ("percent_of_ceiling", "% of ceiling"),
           ("round_percent", "per-round %"), ("first_step_s", "first step (s)"), ("parameters_m", "params (M)")]


def _causal_share(is_causal: bool) -> float:
    # A causal kernel skips the blocks above the diagonal: count the half it computes.
    return 0.5 if is_causal else 1.0


# PyTorch counts its GPU attention kernels but not the CPU one; same formulas (backward with the recomputed
# scores), halved where causal.
if torch.ops.aten._scaled_dot_product_flash_attention_for_cpu not in flop_registry:
    @register_flop_formula(torch.ops.aten._scaled_dot_product_flash_attention_for_cpu)
    def _cpu_flash_flop(query_shape, key_shape, value_shape, dropout_p=0.0, is_causal=False, *args,
                        out_shape=None, **kwargs) -> int:
        return int(sdpa_flop_count(query_shape, key_shape, value_shape) * _causal_share(is_causal))

    @register_flop_formula(torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward)
    def _cpu_flash_backward_flop(grad_out_shape, query_shape, key_shape, value_shape, out_shape_, logsumexp_shape,
                                 dropout_p=0.0, is_causal=False, *args, out_shape=None, **kwargs) -> int:
        count = sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)
        return int(count * _causal_share(is_causal))


def ceiling_gflops(repeats: int = 3) -> float:
    """GFLOPS of a 2048x2048 bf16 matmul on the current threads (median of `repeats`)."""
    a = torch.randn(CEILING_SIZE, CEILING_SIZE, dtype=torch.bfloat16)
    b = torch.randn(CEILING_SIZE, CEILING_SIZE, dtype=torch.bfloat16)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * CEILING_SIZE ** 3 / statistics.median(times) / 1e9


def configuration(name: str, checkpoint: Path) -> VideoGPTConfig | VQVAEConfig:
    """The model config of a named configuration; the world ones are `checkpoint`'s."""
    def saved(kind, cls):
        data = json.loads((checkpoint / kind / "config.json").read_text())
        data.pop("model_kind", None)
        return config_from_dict(cls, data, str(checkpoint / kind / "config.json"))

    if name == "world-prior":
        return saved("prior", VideoGPTConfig)
    if name == "frame-prior":
        world = saved("prior", VideoGPTConfig)
        return dataclasses.replace(world, latent_shape=(16, 8, 8), sequence_length=16, n_cond_frames=0, action_dim=3,
                                   action_range=None)
    if name == "world-vqvae":
        return saved("vqvae", VQVAEConfig)
    if name == "frame-vqvae":
        return VQVAEConfig(embedding_dim=64, n_codes=1024, n_hiddens=64, n_res_layers=2, downsample=(1, 8, 8),
                           causal=True, sequence_length=16, resolution=64)
    raise ValueError(f"unknown configuration {name!r}; choose from {', '.join(CONFIGURATIONS)}")


def task_and_batch(config, settings: dict[str, Any], batch: int) -> tuple[Any, dict[str, torch.Tensor]]:
    """A training task (model with the recipe's dropout, fixed seed) and one batch of random inputs."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    if isinstance(config, VQVAEConfig):
        video = torch.rand(batch, 3, config.sequence_length, config.resolution, config.resolution,
                           generator=generator) - 0.5
        return VQVAETask(VQVAE(config).train()), dict(video=video)
    config = dataclasses.replace(config, dropout=settings["dropout"], attn_dropout=settings["attn_dropout"])
    prior = VideoGPT(config).train()
    if settings.get("unfused_qkv"):
        separate_qkv(prior)
    with torch.no_grad():  # code vectors of a codebook's scale, not the constructor's zeros
        prior.codebook.normal_(generator=generator)
    inputs = dict(codes=torch.randint(0, config.n_codes, (batch, *config.latent_shape), generator=generator))
    if config.n_cond_frames:
        inputs["frames"] = torch.rand(batch, 3, config.n_cond_frames, config.resolution, config.resolution,
                                      generator=generator) - 0.5
    if config.action_dim:
        inputs["actions"] = torch.rand(batch, config.sequence_length, config.action_dim, generator=generator)
    return PriorTask(prior, vqvae=torch.nn.Identity()), inputs


def separate_qkv(prior: VideoGPT) -> None:
    """The `unfused` recipe: each block's training forward projects queries, keys and values as three products
    (the cached path's), as the step did before they became one."""
    for block in prior.blocks:
        block._self_attention = block.attn.self_attention


def trainer_step(task, batch: dict[str, torch.Tensor], settings: dict[str, Any],
                 device: torch.device) -> Callable[[], float]:
    """One optimizer step as the trainer takes it (its loss module, autocast, clipping at 1.0, AdamW)."""
    module = LossModule(task, task.model)
    if settings.get("compile"):
        module.compile()
    optimizer = adamw(task.model, 3e-4, 0.0)
    parameters = list(task.model.parameters())

    def step() -> float:
        with autocast(device, settings["amp"]):
            loss = module(batch)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()
    return step


def count_flops(task, batch: dict[str, torch.Tensor], amp: str, device: torch.device) -> int:
    """Forward + backward FLOPs of one step (matmuls, convolutions, attention), counted eagerly."""
    counter = FlopCounterMode(display=False)
    with counter:
        with autocast(device, amp):
            loss = LossModule(task, task.model)(batch)["loss"]
        loss.backward()
    task.model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def _timed(step: Callable[[], float]) -> tuple[float, float]:
    """(seconds of one step, the ceiling's GFLOPS: the mean of one measured before and one after)."""
    before = ceiling_gflops()
    start = time.perf_counter()
    loss = step()
    seconds = time.perf_counter() - start
    if not loss == loss or abs(loss) == float("inf"):
        raise ValueError(f"the step's loss is {loss}: the timing would be of a broken step")
    return seconds, (before + ceiling_gflops()) / 2


def measure_configuration(name: str, config, recipes: dict[str, dict[str, Any]], batch: int, rounds: int,
                          device: torch.device) -> list[dict[str, Any]]:
    """Rows (one per recipe) of a configuration: steps interleaved recipe by recipe over `rounds`."""
    steps, first_s, flops, parameters = {}, {}, None, 0
    for recipe, settings in recipes.items():
        task, inputs = task_and_batch(config, settings, batch)
        parameters = sum(p.numel() for p in task.model.parameters())
        if flops is None:  # the same arithmetic for every recipe: counted once
            flops = count_flops(task, inputs, settings["amp"], device)
        steps[recipe] = trainer_step(task, inputs, settings, device)
        start = time.perf_counter()
        steps[recipe]()  # first step: Adam's state, the codebook's init, a compiled recipe's compilation
        first_s[recipe] = time.perf_counter() - start
        steps[recipe]()
        _progress(f"{name} {recipe}: first step {first_s[recipe]:.0f} s")
    runs: dict[str, list[tuple[float, float]]] = {recipe: [] for recipe in recipes}
    for _ in range(rounds):
        for recipe in recipes:  # interleaved: load changes hit every recipe alike
            seconds, ceiling = _timed(steps[recipe])
            runs[recipe].append((seconds, ceiling))
            _progress(f"{name} {recipe}: {1000 * seconds:.0f} ms/step, {flops / seconds / 1e9:.1f} GFLOPS, ceiling "
                      f"{ceiling:.0f} GFLOPS")
    rows = []
    for recipe in recipes:
        seconds = statistics.median(s for s, _ in runs[recipe])
        percents = [100 * flops / s / 1e9 / c for s, c in runs[recipe]]
        rows.append(dict(configuration=name, recipe=recipe, batch=batch, gflop_per_step=flops / 1e9,
                         ms_per_step=1000 * seconds, gflops=flops / seconds / 1e9,
                         ceiling_gflops=statistics.median(c for _, c in runs[recipe]),
                         percent_of_ceiling=statistics.median(percents),
                         round_percent=[round(p, 1) for p in percents], first_step_s=first_s[recipe],
                         parameters_m=parameters / 1e6))
    return rows


def _progress(message: str) -> None:
    print(f"{message} (load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)


def _kernel(name: str, flops: float, run: Callable[[], Any], rounds: int) -> dict[str, Any]:
    """One kernel's GFLOPS against the ceiling measured beside it (median over rounds of 5 calls each)."""
    run()
    percents, seconds = [], []
    for _ in range(rounds):
        before = ceiling_gflops()
        start = time.perf_counter()
        for _ in range(5):
            run()
        seconds.append((time.perf_counter() - start) / 5)
        percents.append(100 * flops / seconds[-1] / 1e9 / ((before + ceiling_gflops()) / 2))
    median = statistics.median(seconds)
    return dict(kernel=name, gflop=flops / 1e9, ms=1000 * median, gflops=flops / median / 1e9,
                percent_of_ceiling=statistics.median(percents))


def kernel_rows(config: VideoGPTConfig, batch: int, rounds: int) -> list[dict[str, Any]]:
    """The prior's own matmul shapes (bf16, forward) and its causal attention (forward + backward) against the
    ceiling: what the step could reach if it ran nothing else."""
    tokens, d, n_codes = batch * config.seq_len, config.hidden_dim, config.n_codes
    x = {width: torch.randn(tokens, width, dtype=torch.bfloat16) for width in (d, 4 * d)}
    rows = [_kernel(f"linear {tokens}x{k} @ {k}x{n}", 2 * tokens * k * n, lambda k=k, w=w: x[k] @ w, rounds)
            for k, n in ((d, d), (d, 4 * d), (4 * d, d), (d, n_codes))
            for w in [torch.randn(k, n, dtype=torch.bfloat16)]]
    heads = config.n_heads
    q, k, v = (torch.randn(batch, heads, config.seq_len, d // heads, dtype=torch.bfloat16, requires_grad=True)
               for _ in range(3))
    grad = torch.randn_like(q)

    def attention():
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        torch.autograd.grad(out, (q, k, v), grad)

    flops = 7 * 2 * batch * heads * config.seq_len ** 2 * (d // heads) * _causal_share(True)
    return rows + [_kernel(f"causal attention {tuple(q.shape)}, forward + backward", flops, attention, rounds)]


KERNEL_COLUMNS = [("kernel", "kernel"), ("gflop", "GFLOP"), ("ms", "ms"), ("gflops", "GFLOPS"),
                  ("percent_of_ceiling", "% of ceiling")]


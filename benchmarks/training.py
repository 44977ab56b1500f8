"""Training-step throughput of the VQ-VAE and the prior: forward + backward + Adam step on random data, in
samples/s and ms/step (default: the demo size).

    python -m benchmarks.training [--sizes demo] [--batch 4] [--cond none] [--device cpu|cuda] [--threads N]
                                  [--amp none|bf16|fp16] [--json out.json]

Before / after a change of the training recipe, on a shipped checkpoint's architecture (its conditioning
included), interleaved over several rounds, with the loss of a short fixed run on real clips of the pusher
world (the same batches for every recipe) and a held-out loss without dropout:

    python -m benchmarks.training --checkpoint checkpoints/pusher --recipes before,after --rounds 3 \
        --loss-steps 20 [--threads 2] [--batch 4]

Recipes: `before` = the trainer's earlier CPU defaults (dropout 0.2, attention dropout 0.3, float32);
`after` = today's CPU defaults (the `small` preset's dropout, `--mixed-precision auto`); `unfused` = `after`
with the prior's queries, keys and values as three products (the training step before they were one);
`compiled` = `after` with the training forward compiled (`--compile`).

Achieved FLOPS of the training step against a same-process 2048x2048 bf16 matmul (training_flops.py), for the
shipped world model's prior and VQ-VAE and their causal per-frame counterparts:

    python -m benchmarks.training --flops [--checkpoint checkpoints/vizdoom] [--recipes after,compiled]
                                  [--configs world-prior,frame-prior,world-vqvae,frame-vqvae] [--rounds 3]
                                  [--batch 8] [--threads 2]
    python -m benchmarks.training --flops --kernels    # the prior's matmul shapes and attention alone
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import (AMP_DTYPES, CONDITIONS, ModelSize, add_common_arguments, autocast, measure,
                               positive_ints, prior_kwargs, random_conditions, report, setup_device)
from benchmarks.training_flops import (CEILING_SIZE, CONFIGURATIONS, DESCRIPTIONS, KERNEL_COLUMNS, configuration,
                                      kernel_rows, measure_configuration, separate_qkv)
from benchmarks.training_flops import COLUMNS as FLOPS_COLUMNS
from videogpt_core.models.config import VQVAEConfig
from videogpt_core.models.prior import VideoGPT
from videogpt_core.models.vqvae import VQVAE
from videogpt_core.training.prior_task import PriorTask
from videogpt_core.training.trainer import LossModule
from videogpt_core.training.vqvae_task import VQVAETask

MODULE = "benchmarks.training"
COLUMNS = [("size", "size"), ("model", "model"), ("batch", "batch"), ("ms_per_step", "ms/step"),
           ("samples_per_s", "samples/s"), ("tokens_per_s", "tokens/s"), ("parameters_m", "params (M)"),
           ("runs", "steps timed")]


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss, device: torch.device, amp: str):
    def step():
        with autocast(device, amp):
            value = loss()
        value.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def benchmark(size: ModelSize, batch: int, condition: str, device: torch.device, amp: str,
              repeats: int) -> list[dict[str, Any]]:
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    vqvae = VQVAE(VQVAEConfig(**size.vqvae)).to(device).train()
    cfg = vqvae.config
    video = (torch.rand(batch, 3, cfg.sequence_length, cfg.resolution, cfg.resolution, generator=generator)
             - 0.5).to(device)
    # The reference's training dropout (0.2, attention 0.3): what a real prior step runs.
    prior = VideoGPT.for_vqvae(vqvae, **dict(prior_kwargs(size, condition), dropout=0.2, attn_dropout=0.3))
    prior = prior.to(device).train()
    codes = torch.randint(0, cfg.n_codes, (batch, *cfg.latent_shape), generator=generator).to(device)
    conditions = random_conditions(prior, batch, device)

    rows = []
    for name, model, loss, tokens in (
            ("vqvae", vqvae, lambda: vqvae(video)["loss"], 0),
            ("prior", prior, lambda: prior.loss(codes, **conditions)["loss"], codes[0].numel())):
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
        # Two warmup steps: the first Adam step allocates its state, the VQ-VAE's first initialises the codebook.
        timing = measure(train_step(model, optimizer, loss, device, amp), device, warmup=2, repeats=repeats,
                         budget_s=30.0)
        rows.append(dict(size=size.name, model=name, batch=batch, ms_per_step=1000 * timing.median_s,
                         samples_per_s=batch / timing.median_s,
                         tokens_per_s=batch * tokens / timing.median_s if tokens else None,
                         parameters_m=sum(p.numel() for p in model.parameters()) / 1e6, runs=len(timing.runs)))
    return rows


RECIPE_COLUMNS = [("model", "model"), ("recipe", "recipe"), ("batch", "batch"), ("ms_per_step", "ms/step"),
                  ("samples_per_s", "samples/s"), ("speedup", "speed-up"), ("round_ms", "per-round median ms"),
                  ("fixed_run_loss", "fixed-run train loss"), ("held_out_loss", "held-out loss"),
                  ("parameters_m", "params (M)")]


def recipe_settings(name: str) -> dict[str, Any]:
    """Dropout, attention dropout and autocast dtype of a named recipe (and whether it compiles the forward or
    projects the prior's queries, keys and values as three products)."""
    from videogpt_core.training.accelerator import resolve_mixed_precision
    from videogpt_core.training.sizes import preset

    if name == "before":
        return dict(dropout=0.2, attn_dropout=0.3, amp="none")
    if name in ("unfused", "after", "compiled"):
        small = preset("prior", "small")
        amp = {"bf16": "bf16", "fp16": "fp16", "no": "none"}[resolve_mixed_precision("auto")]
        settings = dict(dropout=small["dropout"], attn_dropout=small["attn_dropout"], amp=amp)
        extra = {"unfused": dict(unfused_qkv=True), "after": {}, "compiled": dict(compile=True)}[name]
        return dict(settings, **extra)
    raise argparse.ArgumentTypeError(f"unknown recipe {name!r}; choose before, unfused, after or compiled")


def pusher_batches(n_batches: int, batch: int, frames: int, first_seed: int) -> list[dict[str, torch.Tensor]]:
    """Batches of real clips from the built-in pusher world (videos in [-0.5, 0.5] and per-frame actions)."""
    from videogpt_core.data.transforms import to_model_video
    from videogpt_core.data.worlds.pusher import generate_pusher_episode

    batches = []
    for b in range(n_batches):
        episodes = [generate_pusher_episode(first_seed + b * batch + i, frames) for i in range(batch)]
        batches.append(dict(video=torch.stack([to_model_video(e.frames) for e in episodes]),
                            actions=torch.stack([torch.as_tensor(e.actions, dtype=torch.float32) for e in episodes])))
    return batches


def _prior_inputs(prior: VideoGPT, vqvae: VQVAE, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    inputs = dict(codes=vqvae.encode(batch["video"]))
    if prior.config.n_cond_frames:
        inputs["frames"] = batch["video"][:, :, :prior.config.n_cond_frames]
    if prior.config.action_dim:  # the pusher's two action dimensions, zero-padded or cut to the prior's
        actions = batch["actions"][..., :prior.config.action_dim]
        inputs["actions"] = torch.nn.functional.pad(actions, (0, prior.config.action_dim - actions.shape[-1]))
    return inputs


class _Recipes:
    """The checkpoint's architectures and the recipes' models, each behind the trainer's loss module."""

    def __init__(self, checkpoint: Path, recipes: list[str], device: torch.device):
        from videogpt_core.models.config import VideoGPTConfig, VQVAEConfig, config_from_dict

        def config(kind, cls):
            data = json.loads((checkpoint / kind / "config.json").read_text())
            data.pop("model_kind", None)
            return config_from_dict(cls, data, str(checkpoint / kind / "config.json"))

        self.vq_config, self.prior_config = config("vqvae", VQVAEConfig), config("prior", VideoGPTConfig)
        self.trained_vqvae = VQVAE.from_pretrained(checkpoint / "vqvae").eval()  # makes the prior's real codes
        self.settings = {name: recipe_settings(name) for name in recipes}
        self.device = device

    def build(self, model: str, name: str) -> LossModule:
        """The model of `model` ("vqvae" / "prior") with the recipe's dropout, from seed 0, compiled if asked."""
        torch.manual_seed(0)
        s = self.settings[name]
        if model == "vqvae":
            task = VQVAETask(VQVAE(self.vq_config).to(self.device).train())
        else:
            prior = VideoGPT(dataclasses.replace(self.prior_config, dropout=s["dropout"],
                                                 attn_dropout=s["attn_dropout"]))
            prior.codebook.copy_(self.trained_vqvae.codebook.embeddings)
            if s.get("unfused_qkv"):
                separate_qkv(prior)
            task = PriorTask(prior.to(self.device).train(), self.trained_vqvae)
        module = LossModule(task, task.model)
        if s.get("compile"):
            module.compile()
        return module

    def data(self, batch: int, n_fixed: int) -> tuple[dict[str, list], dict[str, list]]:
        """Training batches (the fixed run's) and held-out batches per model, on the device."""
        clips = pusher_batches(n_fixed + 2, batch, self.vq_config.sequence_length, first_seed=0)
        held_out = pusher_batches(2, batch, self.vq_config.sequence_length, first_seed=10_000_000)  # test seeds
        to = self.device
        prior = self.build("prior", next(iter(self.settings))).model
        with torch.no_grad():
            codes = [{k: v.to(to) for k, v in _prior_inputs(prior, self.trained_vqvae, c).items()}
                     for c in clips + held_out]
        train = {"vqvae": [dict(video=c["video"].to(to)) for c in clips], "prior": codes[:len(clips)]}
        held = {"vqvae": [dict(video=c["video"].to(to)) for c in held_out], "prior": codes[len(clips):]}
        return train, held


def _round_timings(recipes: _Recipes, model: str, data: dict[str, torch.Tensor], rounds: int,
                   repeats: int) -> dict[str, list[float]]:
    """Per recipe, the median step time of every round; rounds interleave the recipes."""
    steps = {}
    for name in recipes.settings:  # built once: a compiled recipe compiles once
        module = recipes.build(model, name)
        optimizer = torch.optim.Adam(module.model.parameters(), lr=3e-4)
        steps[name] = train_step(module, optimizer, lambda m=module: m(data)["loss"], recipes.device,
                                 recipes.settings[name]["amp"])
    medians: dict[str, list[float]] = {name: [] for name in recipes.settings}
    for i in range(rounds):
        for name, step in steps.items():  # interleaved: load changes hit every recipe alike
            timing = measure(step, recipes.device, warmup=2 if i == 0 else 0, repeats=repeats, budget_s=60.0)
            medians[name].append(timing.median_s)
            print(f"{model} {name}: {1000 * timing.median_s:.0f} ms/step (load {os.getloadavg()[0]:.1f})",
                  file=sys.stderr, flush=True)
    return medians


def _fixed_run(recipes: _Recipes, model: str, name: str, train: list, held: list, loss_steps: int):
    """(mean train loss of the last 5 steps, held-out loss in eval mode, float32); the same batches per recipe."""
    module = recipes.build(model, name)
    optimizer = torch.optim.Adam(module.model.parameters(), lr=3e-4)
    losses = []
    for i in range(loss_steps):
        with autocast(recipes.device, recipes.settings[name]["amp"]):
            value = module(train[i % len(train)])["loss"]
        value.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(value.item())
    module.model.eval()
    with torch.no_grad():  # uncompiled, no dropout: the models compared as they would be used
        held_loss = statistics.mean(module.task.loss(module.model, b)["loss"].item() for b in held)
    train_loss = statistics.mean(losses[-5:]) if losses else None
    print(f"{model} {name}: fixed-run loss {train_loss}, held-out {held_loss}", file=sys.stderr, flush=True)
    return train_loss, held_loss if losses else None


def compare_recipes(checkpoint: Path, recipes: list[str], batch: int, rounds: int, repeats: int, loss_steps: int,
                    device: torch.device, models: tuple[str, ...] = ("vqvae", "prior")) -> list[dict[str, Any]]:
    """Interleaved step timings (every round times each recipe in turn) and a fixed run per recipe."""
    setup = _Recipes(checkpoint, recipes, device)
    train, held = setup.data(batch, max(loss_steps, 1))
    rows = []
    for model in models:
        medians = _round_timings(setup, model, train[model][0], rounds, repeats)
        for name in recipes:
            train_loss, held_loss = _fixed_run(setup, model, name, train[model], held[model], loss_steps)
            median = statistics.median(medians[name])
            rows.append(dict(model=model, recipe=name, batch=batch, ms_per_step=1000 * median,
                             samples_per_s=batch / median, round_ms=[round(1000 * t) for t in medians[name]],
                             fixed_run_loss=train_loss, held_out_loss=held_loss,
                             parameters_m=sum(p.numel() for p in setup.build(model, name).model.parameters()) / 1e6,
                             **setup.settings[name]))
        base = next(r for r in rows if r["model"] == model and r["recipe"] == recipes[0])
        for row in rows:
            if row["model"] == model:
                row["speedup"] = row["samples_per_s"] / base["samples_per_s"]
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, default_sizes="demo")
    parser.add_argument("--batch", type=positive_ints, default=None,
                        help="comma-separated batch sizes (default 4; with --flops 8, the trainer's)")
    parser.add_argument("--cond", choices=CONDITIONS, default="none", help="conditioning of the prior")
    parser.add_argument("--amp", choices=list(AMP_DTYPES), default="none", help="autocast dtype")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps (median; at most ~30 s per model)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="compare --recipes on this pipeline folder's architecture (vqvae/ + prior/ configs)")
    parser.add_argument("--recipes", type=lambda text: [recipe_settings(n) and n for n in text.split(",")],
                        default=None, help="with --checkpoint or --flops: recipes to compare (default before,after; "
                                           "with --flops after,compiled)")
    parser.add_argument("--rounds", type=int, default=3, help="with --checkpoint or --flops: interleaved rounds")
    parser.add_argument("--flops", action="store_true",
                        help="achieved FLOPS of the step against a bf16 matmul ceiling (training_flops.py)")
    parser.add_argument("--kernels", action="store_true",
                        help="with --flops: the prior's matmul shapes and attention alone against the ceiling")
    parser.add_argument("--configs", type=lambda text: text.split(","), default=list(CONFIGURATIONS),
                        help=f"with --flops: configurations to measure (default {','.join(CONFIGURATIONS)})")
    parser.add_argument("--models", type=lambda text: tuple(text.split(",")), default=("vqvae", "prior"),
                        help="with --checkpoint: vqvae, prior or vqvae,prior")
    parser.add_argument("--loss-steps", type=int, default=20,
                        help="with --checkpoint: steps of the fixed run whose loss is reported (0: none)")
    args = parser.parse_args(argv)
    device = setup_device(args.device, args.threads)
    started = time.perf_counter()
    if args.flops:
        return _flops_main(args, device, started)
    args.batch = args.batch or [4]
    if args.checkpoint is not None:
        args.recipes = args.recipes or ["before", "after"]
        return _compare_main(args, device, started)
    rows = []
    for size in args.sizes:
        for batch in args.batch:
            rows += benchmark(size, batch, args.cond, device, args.amp, args.repeats)
    notes = [f"{size.name}: {size.description}" for size in args.sizes]
    notes += [f"one step = forward + backward + Adam step on random data (prior conditioning: {args.cond}, "
              f"dropout 0.2 / attention dropout 0.3, autocast: {args.amp}); no data loading, one process",
              "median over the timed steps after two warmup steps",
              f"benchmark wall time {time.perf_counter() - started:.0f} s"]
    report("training-step throughput", MODULE, device, rows, COLUMNS, notes, args.json,
           extra=dict(settings=dict(sizes=[s.name for s in args.sizes], batch=args.batch, cond=args.cond,
                                    amp=args.amp, repeats=args.repeats)))
    return dict(rows=rows)


def _compare_main(args: argparse.Namespace, device: torch.device, started: float) -> dict[str, Any]:
    load_before = os.getloadavg()
    unknown = set(args.models) - {"vqvae", "prior"}
    if unknown:
        raise ValueError(f"--models: unknown {sorted(unknown)}; choose from vqvae, prior")
    rows = compare_recipes(args.checkpoint, args.recipes, args.batch[0], args.rounds, args.repeats,
                           args.loss_steps, device, args.models)
    load_after = os.getloadavg()
    notes = [f"architecture of {args.checkpoint} (its conditioning included); one process, no data loader",
             f"recipes: {_describe(args.recipes)}",
             f"ms/step: median over {args.rounds} interleaved rounds of each round's median of up to {args.repeats} "
             "timed steps (after 2 warmup steps)",
             f"fixed run: {args.loss_steps} Adam steps (lr 3e-4) from the same initial weights on the same real pusher "
             "clips (seeds 0..), train loss = mean of the last 5 steps; held-out loss: eval mode, float32, on 2 "
             "batches of test-seed clips (for the prior: nats per token of the shipped VQ-VAE's codes)",
             f"load average (1, 5, 15 min) at start {load_before}, at end {load_after}; "
             f"{os.cpu_count()} cores shared with other work",
             f"benchmark wall time {time.perf_counter() - started:.0f} s"]
    report("training recipes before / after", MODULE, device, rows, RECIPE_COLUMNS, notes, args.json,
           extra=dict(settings=dict(checkpoint=str(args.checkpoint), recipes=args.recipes, batch=args.batch[0],
                                    rounds=args.rounds, repeats=args.repeats, loss_steps=args.loss_steps)))
    return dict(rows=rows)


def _describe(recipes: list[str]) -> str:
    def one(name: str, s: dict[str, Any]) -> str:
        extra = (", compiled forward" if s.get("compile") else "") + (
            ", q/k/v as three products" if s.get("unfused_qkv") else "")
        return f"{name}: dropout {s['dropout']}, attention dropout {s['attn_dropout']}, autocast {s['amp']}{extra}"
    return "; ".join(one(name, recipe_settings(name)) for name in recipes)


def _flops_main(args: argparse.Namespace, device: torch.device, started: float) -> dict[str, Any]:
    unknown = sorted(set(args.configs) - set(CONFIGURATIONS))
    if unknown:
        raise ValueError(f"--configs: unknown {unknown}; choose from {', '.join(CONFIGURATIONS)}")
    checkpoint = args.checkpoint or Path("checkpoints/vizdoom")
    recipes = {name: recipe_settings(name) for name in args.recipes or ["after", "compiled"]}
    batch, load_before = (args.batch or [8])[0], os.getloadavg()
    if args.kernels:
        return _kernels_main(args, configuration("world-prior", checkpoint), batch, device)
    rows = []
    for name in args.configs:
        rows += measure_configuration(name, configuration(name, checkpoint), recipes, batch, args.rounds, device)
    notes = [f"{name}: {DESCRIPTIONS[name]}" for name in args.configs]
    notes += [f"architectures of {checkpoint}; random inputs, one process, no data loader",
              f"recipes: {_describe(list(recipes))}",
              "one step = forward + backward + gradient clipping (1.0) + AdamW (lr 3e-4), through the trainer's loss "
              "module; GFLOP/step counted once per configuration with FlopCounterMode (matmuls, convolutions, "
              "attention; causal attention at half), forward + backward, eagerly",
              f"ceiling: a {CEILING_SIZE}x{CEILING_SIZE} bf16 matmul on the same threads, median of 3 measured right "
              "before and 3 right after each timed step; % of ceiling: per round, the step's GFLOPS over the mean "
              f"of those two, then the median over {args.rounds} interleaved rounds (after 2 untimed steps)",
              f"load average (1, 5, 15 min) at start {load_before}, at end {os.getloadavg()}; "
              f"{os.cpu_count()} cores shared with other work",
              f"benchmark wall time {time.perf_counter() - started:.0f} s"]
    report("training-step FLOPS against the bf16 ceiling", MODULE, device, rows, FLOPS_COLUMNS, notes, args.json,
           extra=dict(settings=dict(checkpoint=str(checkpoint), configs=args.configs, recipes=list(recipes),
                                    batch=batch, rounds=args.rounds)))
    return dict(rows=rows)


def _kernels_main(args: argparse.Namespace, prior: Any, batch: int, device: torch.device) -> dict[str, Any]:
    load_before = os.getloadavg()
    rows = kernel_rows(prior, batch, args.rounds)
    notes = [f"the world prior's shapes at batch {batch}: {batch * prior.seq_len} tokens of width {prior.hidden_dim}, "
             f"{prior.n_heads} heads, {prior.n_codes} codes; bf16 inputs, 2048x2048 bf16 matmul ceiling beside each",
             f"median over {args.rounds} rounds of 5 calls; causal attention counted at half, its backward with the "
             "recomputed scores",
             f"load average (1, 5, 15 min) at start {load_before}, at end {os.getloadavg()}"]
    report("the prior's kernels against the bf16 ceiling", MODULE, device, rows, KERNEL_COLUMNS, notes, args.json)
    return dict(rows=rows)


if __name__ == "__main__":
    main()

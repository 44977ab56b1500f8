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
`after` = today's CPU defaults (the `small` preset's dropout, `--mixed-precision auto`).
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
from videogpt_core.config import VQVAEConfig
from videogpt_core.prior import VideoGPT
from videogpt_core.vqvae import VQVAE

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
    """Dropout, attention dropout and autocast dtype of a named recipe."""
    from videogpt_core.training.accelerator import resolve_mixed_precision
    from videogpt_core.training.sizes import preset

    if name == "before":
        return dict(dropout=0.2, attn_dropout=0.3, amp="none")
    if name == "after":
        small = preset("prior", "small")
        amp = {"bf16": "bf16", "fp16": "fp16", "no": "none"}[resolve_mixed_precision("auto")]
        return dict(dropout=small["dropout"], attn_dropout=small["attn_dropout"], amp=amp)
    raise argparse.ArgumentTypeError(f"unknown recipe {name!r}; choose before or after")


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
    if prior.config.action_dim:
        inputs["actions"] = batch["actions"]
    return inputs


def compare_recipes(checkpoint: Path, recipes: list[str], batch: int, rounds: int, repeats: int, loss_steps: int,
                    device: torch.device, models: tuple[str, ...] = ("vqvae", "prior")) -> list[dict[str, Any]]:
    """Interleaved step timings (every round times each recipe in turn) and a fixed run per recipe."""
    from videogpt_core.config import VideoGPTConfig, VQVAEConfig, config_from_dict

    def config(kind, cls):
        data = json.loads((checkpoint / kind / "config.json").read_text())
        data.pop("model_kind", None)
        return config_from_dict(cls, data, str(checkpoint / kind / "config.json"))

    vq_config, prior_config = config("vqvae", VQVAEConfig), config("prior", VideoGPTConfig)
    trained_vqvae = VQVAE.from_pretrained(checkpoint / "vqvae").eval()  # makes the prior's real codes
    settings = {name: recipe_settings(name) for name in recipes}

    def build(model: str, name: str) -> torch.nn.Module:
        torch.manual_seed(0)
        if model == "vqvae":
            return VQVAE(vq_config).to(device).train()
        s = settings[name]
        prior = VideoGPT(dataclasses.replace(prior_config, dropout=s["dropout"], attn_dropout=s["attn_dropout"]))
        prior.codebook.copy_(trained_vqvae.codebook.embeddings)
        return prior.to(device).train()

    def loss_fn(model: str, module: torch.nn.Module, data: dict[str, torch.Tensor]) -> torch.Tensor:
        if model == "vqvae":
            return module(data["video"])["loss"]
        return module.loss(**data)["loss"]

    n_fixed = max(loss_steps, 1)
    clips = pusher_batches(n_fixed + 2, batch, vq_config.sequence_length, first_seed=0)
    held_out = pusher_batches(2, batch, vq_config.sequence_length, first_seed=10_000_000)  # the world's test seeds
    data = {"vqvae": [dict(video=c["video"].to(device)) for c in clips]}
    with torch.no_grad():
        prior_for_codes = build("prior", recipes[0])
        data["prior"] = [{k: v.to(device) for k, v in _prior_inputs(prior_for_codes, trained_vqvae, c).items()}
                         for c in clips + held_out]
    held = {"vqvae": [dict(video=c["video"].to(device)) for c in held_out], "prior": data["prior"][len(clips):]}
    data["prior"] = data["prior"][:len(clips)]

    rows = []
    for model in models:
        round_medians: dict[str, list[float]] = {name: [] for name in recipes}
        for _ in range(rounds):
            for name in recipes:  # interleaved: load changes hit every recipe alike
                module = build(model, name)
                optimizer = torch.optim.Adam(module.parameters(), lr=3e-4)
                batch_data = data[model][0]
                step = train_step(module, optimizer, lambda: loss_fn(model, module, batch_data), device,
                                  settings[name]["amp"])
                timing = measure(step, device, warmup=2, repeats=repeats, budget_s=60.0)
                round_medians[name].append(timing.median_s)
                print(f"{model} {name}: {1000 * timing.median_s:.0f} ms/step (load {os.getloadavg()[0]:.1f})",
                      file=sys.stderr, flush=True)
        for name in recipes:
            module = build(model, name)
            optimizer = torch.optim.Adam(module.parameters(), lr=3e-4)
            losses = []
            for i in range(loss_steps):
                with autocast(device, settings[name]["amp"]):
                    value = loss_fn(model, module, data[model][i % len(data[model])])
                value.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(value.item())
            module.eval()
            with torch.no_grad():  # float32, no dropout: the models compared as they would be used
                held_loss = statistics.mean(loss_fn(model, module, b).item() for b in held[model])
            print(f"{model} {name}: fixed-run loss {statistics.mean(losses[-5:]) if losses else None}, held-out "
                  f"{held_loss}", file=sys.stderr, flush=True)
            median = statistics.median(round_medians[name])
            rows.append(dict(model=model, recipe=name, batch=batch, ms_per_step=1000 * median,
                             samples_per_s=batch / median, round_ms=[round(1000 * t) for t in round_medians[name]],
                             fixed_run_loss=statistics.mean(losses[-5:]) if losses else None,
                             held_out_loss=held_loss if losses else None,
                             parameters_m=sum(p.numel() for p in module.parameters()) / 1e6, **settings[name]))
        base = next(r for r in rows if r["model"] == model and r["recipe"] == recipes[0])
        for row in rows:
            if row["model"] == model:
                row["speedup"] = row["samples_per_s"] / base["samples_per_s"]
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, default_sizes="demo")
    parser.add_argument("--batch", type=positive_ints, default=[4], help="comma-separated batch sizes")
    parser.add_argument("--cond", choices=CONDITIONS, default="none", help="conditioning of the prior")
    parser.add_argument("--amp", choices=list(AMP_DTYPES), default="none", help="autocast dtype")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps (median; at most ~30 s per model)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="compare --recipes on this pipeline folder's architecture (vqvae/ + prior/ configs)")
    parser.add_argument("--recipes", type=lambda text: [recipe_settings(n) and n for n in text.split(",")],
                        default=["before", "after"], help="with --checkpoint: recipes to compare (before,after)")
    parser.add_argument("--rounds", type=int, default=3, help="with --checkpoint: interleaved timing rounds")
    parser.add_argument("--models", type=lambda text: tuple(text.split(",")), default=("vqvae", "prior"),
                        help="with --checkpoint: vqvae, prior or vqvae,prior")
    parser.add_argument("--loss-steps", type=int, default=20,
                        help="with --checkpoint: steps of the fixed run whose loss is reported (0: none)")
    args = parser.parse_args(argv)
    device = setup_device(args.device, args.threads)
    started = time.perf_counter()
    if args.checkpoint is not None:
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
    recipes = "; ".join(f"{name}: dropout {s['dropout']}, attention dropout {s['attn_dropout']}, autocast {s['amp']}"
                        for name, s in ((name, recipe_settings(name)) for name in args.recipes))
    notes = [f"architecture of {args.checkpoint} (its conditioning included); one process, no data loader",
             f"recipes: {recipes}",
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


if __name__ == "__main__":
    main()

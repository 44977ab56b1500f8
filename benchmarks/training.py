"""Training-step throughput of the VQ-VAE and the prior: forward + backward + Adam step on random data, in
samples/s and ms/step (default: the demo size).

    python -m benchmarks.training [--sizes demo] [--batch 4] [--cond none] [--device cpu|cuda] [--threads N]
                                  [--amp none|bf16|fp16] [--json out.json]
"""
from __future__ import annotations

import argparse
import time
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


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, default_sizes="demo")
    parser.add_argument("--batch", type=positive_ints, default=[4], help="comma-separated batch sizes")
    parser.add_argument("--cond", choices=CONDITIONS, default="none", help="conditioning of the prior")
    parser.add_argument("--amp", choices=list(AMP_DTYPES), default="none", help="autocast dtype")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps (median; at most ~30 s per model)")
    args = parser.parse_args(argv)
    device = setup_device(args.device, args.threads)
    started = time.perf_counter()
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


if __name__ == "__main__":
    main()

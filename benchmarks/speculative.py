"""Speculative sampling on real checkpoints: acceptance and speed of each draft and draft length against
one-code-per-step decoding, variants interleaved round by round (a busy machine drifts), wall and CPU time.

    python -m benchmarks.speculative --checkpoint checkpoints/pusher [--variants plain,left:4,above:4]
                                     [--rounds 3] [--threads 1] [--top-k K] [--cfg-scale S] [--json out.json]

Times cover the prior's sampling of one latent grid (batch 1; the VQ-VAE decode is the same for every
variant and left out). Acceptance = accepted / scored proposals, from the sampler's SpeculationStats.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import report, setup_device
from demo.action_presets import default_preset, preset_actions
from videogpt_core.data.worlds.controls import world_of_model
from videogpt_core.inference.pipeline import VideoGPTPipeline, load_pipeline
from videogpt_core.inference.sampling import generate_codes
from videogpt_core.inference.sampling_options import SamplingOptions
from videogpt_core.inference.speculative import DRAFTS, SpeculationStats
from videogpt_core.io.video_io import read_image
from videogpt_core.models.conditions import Conditions

MODULE = "benchmarks.speculative"
EXAMPLES = Path(__file__).resolve().parent.parent / "demo" / "examples"


def variant_names(text: str) -> list[tuple[str, int | None]]:
    """'plain,left:4' -> [('plain', None), ('left', 4)]."""
    variants = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part == "plain":
            variants.append(("plain", None))
            continue
        draft, _, k = part.partition(":")
        if draft not in DRAFTS or not k.isdigit() or int(k) < 2:
            raise argparse.ArgumentTypeError(f"variant {part!r}: use plain or DRAFT:K with DRAFT in "
                                             f"{', '.join(DRAFTS)} and K >= 2")
        variants.append((draft, int(k)))
    if not variants:
        raise argparse.ArgumentTypeError("no variants given")
    return variants


def demo_inputs(pipeline: VideoGPTPipeline, name: str) -> dict[str, Any]:
    """The conditioning a demo user first gives model `name`: its world's first example frame (pusher's for
    a model of no known world) and default action preset (pusher: a push to the right), a class."""
    cfg = pipeline.config
    world = world_of_model(name)
    inputs: dict[str, Any] = {}
    if cfg.n_cond_frames:
        example = EXAMPLES / f"{world}-test-0.png"
        image = read_image(example if example.is_file() else EXAMPLES / "pusher-test-0.png")
        inputs["frames"] = pipeline.prepare_frames(image)
    if cfg.action_dim:
        actions = preset_actions(default_preset(world), cfg.sequence_length, cfg.action_dim, world=world,
                                 action_range=cfg.action_range)
        inputs["actions"] = pipeline.prepare_actions(actions, cfg.sequence_length)[None]
    if cfg.n_classes:
        inputs["labels"] = torch.tensor([min(7, cfg.n_classes - 1)])  # digits: a 7
    return inputs


def sample_once(pipeline: VideoGPTPipeline, inputs: dict, options: SamplingOptions, draft: str,
                draft_tokens: int | None, seed: int) -> dict[str, Any]:
    stats = SpeculationStats()
    generator = torch.Generator().manual_seed(seed)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in generate_codes(pipeline.prior, 1, Conditions(**inputs), options=options, generator=generator,
                            draft_tokens=draft_tokens, draft=draft if draft != "plain" else "left", stats=stats):
        pass
    return dict(wall_s=time.perf_counter() - wall, cpu_s=time.process_time() - cpu, **stats.as_dict())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True, metavar="DIR", help="a pipeline folder")
    parser.add_argument("--variants", type=variant_names,
                        default=variant_names("plain,left:4,above:4,previous-slice:4"),
                        help="comma-separated: plain, or DRAFT:K (K codes scored per verify pass)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each runs every variant once")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    SamplingOptions.add_arguments(parser)
    parser.add_argument("--json", type=Path, default=None, metavar="OUT.json")
    args = parser.parse_args(argv)
    device = setup_device("cpu", args.threads)
    pipeline = load_pipeline(args.checkpoint, device=device)
    inputs = demo_inputs(pipeline, Path(args.checkpoint).resolve().name)
    options = SamplingOptions.from_arguments(args)
    runs: dict[str, list[dict]] = {}
    loads = []
    sample_once(pipeline, inputs, options, "plain", None, seed=0)  # warm-up: allocations, first-call costs
    for round_index in range(args.rounds):
        loads.append(os.getloadavg()[0])
        for draft, k in args.variants:
            name = draft if k is None else f"{draft}:{k}"
            runs.setdefault(name, []).append(sample_once(pipeline, inputs, options, draft, k, seed=round_index))
    plain = runs.get("plain")
    rows = []
    for name, results in runs.items():
        row = dict(model=str(args.checkpoint), variant=name,
                   wall_s=statistics.median(r["wall_s"] for r in results),
                   cpu_s=statistics.median(r["cpu_s"] for r in results),
                   acceptance=statistics.median(r["acceptance"] for r in results) if name != "plain" else None,
                   positions_per_pass=statistics.median(r["positions_per_pass"] for r in results)
                   if name != "plain" else None,
                   runs_wall_s=[round(r["wall_s"], 2) for r in results])
        if plain and name != "plain":
            # Per round: the plain run of the same round / this run (interleaved, so drift cancels).
            row["speedup_cpu"] = statistics.median(p["cpu_s"] / r["cpu_s"] for p, r in zip(plain, results))
            row["speedup_wall"] = statistics.median(p["wall_s"] / r["wall_s"] for p, r in zip(plain, results))
        rows.append(row)
    columns = [("variant", "variant"), ("acceptance", "acceptance"), ("positions_per_pass", "positions/pass"),
               ("cpu_s", "CPU s"), ("wall_s", "wall s"), ("speedup_cpu", "x (CPU)"), ("speedup_wall", "x (wall)")]
    notes = [f"sampling: {options}; batch 1; "
             f"{args.rounds} rounds, medians; load average at each round's start: {loads}"]
    return report("speculative sampling on a checkpoint", MODULE, device, rows, columns, notes, args.json)


if __name__ == "__main__":
    main()

"""Sampling speed: our cached sampler against the reference implementation's sampling algorithm
(benchmarks/reference_sampler.py) and a naive no-cache sampler (per token step, to the first decoded slice,
for a whole video) on random models, or a real pipeline folder end to end (--checkpoint).

    python -m benchmarks.sampling [--sizes demo,uncond1024,bair] [--batch 1,8] [--device cpu|cuda]
                                  [--threads N] [--compile] [--quantize int8] [--full] [--no-reference]
                                  [--json out.json]
    python -m benchmarks.sampling --checkpoint DIR [--batch 1] [--json out.json]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import (AMP_DTYPES, CONDITIONS, ModelSize, Timing, add_common_arguments, autocast,
                               build_models, measure, positive_ints, random_conditions, report, setup_device)
from videogpt_core.inference.code_picker import draw
from videogpt_core.inference.decode_step import DECODE_MODES, DecodeStep
from videogpt_core.inference.pipeline import VideoGPTPipeline, load_pipeline
from videogpt_core.models.conditions import Conditions
from videogpt_core.models.prior import VideoGPT
from videogpt_core.models.quantization import QUANTIZE_MODES

from benchmarks import reference_sampler
from benchmarks.naive_sampler import time_naive_points

MODULE = "benchmarks.sampling"


def pick(logits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return draw(logits.float(), generator)  # temperature 1, no top-k / top-p


# ---- per-position timing -----------------------------------------------------------------------------


def total_time(points: list[tuple[int, float]], first: int, last: int, quadratic: bool = False) -> float:
    """Sum over positions first..last-1 of a per-token cost measured at `points` (position, seconds).

    Linear interpolation between the points (flat beyond the ends); or, with `quadratic`, the quadratic
    a + b*p + c*p^2 through them (least squares), the shape of a forward over p tokens with attention.
    """
    xs = np.array([p for p, _ in points], dtype=float)
    ys = np.array([s for _, s in points], dtype=float)
    positions = np.arange(first, last, dtype=float)
    if quadratic and len(points) >= 3:
        values = np.polyval(np.polyfit(xs, ys, 2), positions)
        return float(np.clip(values, 0.0, None).sum())
    return float(np.interp(positions, xs, ys).sum())


def window_starts(length: int, window: int) -> list[int]:
    """Start, middle and end windows of `window` tokens inside a sequence of `length`."""
    window = min(window, length - 1)
    return sorted({0, max(0, length // 2 - window // 2), length - 1 - window})


def time_our_windows(prior: VideoGPT, batch: int, inputs: dict, window: int, device: torch.device,
                     amp: str, repeats: int, quantize: str | None = None,
                     step: DecodeStep | None = None) -> list[dict[str, Any]]:
    """Median seconds per token step (decode_step + filter + draw) in windows at the start, middle and end."""
    t, h, w = prior.latent_shape
    length = t * h * w
    window = min(window, length - 1)
    step = step or DecodeStep.eager(prior)
    static = step.static
    position_ids = torch.arange(length, device=device)
    generator = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad(), autocast(device, amp):
        state = prior.start_decoding(batch, quantize=quantize, static=step.kept_states,
                                     conditions=Conditions(**inputs))
        first_logits = prior.prefill(state)
        # The cache before a window holds noise instead of prefilled keys and values: a step costs the same
        # whatever they hold, and prefilling thousands of tokens would take longer than the timing itself.
        for cache in state.caches:
            cache.keys.normal_(generator=generator)
            cache.values.normal_(generator=generator)
    results = []
    for start in window_starts(length, window):

        def run():
            # Re-running on the same state is exact: each step writes its cache slot before any step reads it.
            with torch.no_grad(), autocast(device, amp):
                logits = first_logits
                for position in range(start + 1, start + 1 + window):
                    code = pick(logits, generator)
                    logits = step.run(state, code, step.where(position, position_ids))
                pick(logits, generator)

        cpu = time.process_time()
        timing = measure(run, device, warmup=3 if static else 1, repeats=repeats)
        calls = (3 if static else 1) + len(timing.runs)
        results.append(dict(position=start + window // 2, tokens=window, step_s=timing.median_s / window,
                            cpu_step_s=(time.process_time() - cpu) / (calls * window)))
    state.release()
    return results


def time_reference_windows(prior: VideoGPT, batch: int, inputs: dict, window: int, device: torch.device,
                           amp: str, repeats: int) -> list[dict[str, Any]]:
    """Median seconds per token of the reference's sampling algorithm in windows at the start, middle and end
    (its caches hold noise before a window, as for ours; each of its steps reads the whole cache anyway)."""
    t, h, w = prior.latent_shape
    length = t * h * w
    window = min(window, length - 1)
    generator = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad(), autocast(device, amp):
        state = reference_sampler.start(prior, batch, **inputs)
        for keys, values in state.caches:
            keys.normal_(generator=generator)
            values.normal_(generator=generator)
    results = []
    for start in window_starts(length, window):

        def run():
            with torch.no_grad(), autocast(device, amp):
                for position in range(start, start + window):
                    reference_sampler.step(prior, state, position, generator)

        cpu = time.process_time()
        timing = measure(run, device, warmup=1, repeats=repeats)
        results.append(dict(position=start + window // 2, tokens=window, step_s=timing.median_s / window,
                            cpu_step_s=(time.process_time() - cpu) / ((1 + len(timing.runs)) * window)))
    return results


def reference_start_s(prior: VideoGPT, batch: int, inputs: dict, device: torch.device) -> float:
    with torch.no_grad():
        return measure(lambda: reference_sampler.logits_at(prior, reference_sampler.start(prior, batch, **inputs), 0),
                       device, repeats=3).median_s


# ---- one size ----------------------------------------------------------------------------------------


def pipeline_inputs(pipeline: VideoGPTPipeline, seed: int = 0) -> dict[str, Any]:
    """uint8 / numpy inputs for pipeline.generate that a model of this kind requires."""
    cfg = pipeline.config
    rng = np.random.default_rng(seed)
    inputs: dict[str, Any] = {}
    if cfg.n_cond_frames:
        inputs["frames"] = rng.integers(0, 256, (cfg.resolution, cfg.resolution, 3), dtype=np.uint8)
    if cfg.n_classes:
        inputs["label"] = 0
    if cfg.action_dim:
        if cfg.action_range:  # inside the range the model was trained on (it refuses others)
            low, high = np.asarray(cfg.action_range, dtype=np.float64).T
            rows = rng.uniform(low, high, size=(cfg.sequence_length, cfg.action_dim))
        else:
            rows = rng.normal(size=(cfg.sequence_length, cfg.action_dim))
        inputs["actions"] = rows.astype(np.float32)
    return inputs


def time_first_slice_and_video(pipeline: VideoGPTPipeline, batch: int,
                               repeats: int) -> tuple[Timing, Timing, float | None]:
    """End to end: until the first decoded slice comes out of `stream`, and a whole `generate`; for a
    compiled pipeline also the first generation, which waits for the compiler (seconds, else None)."""
    inputs = pipeline_inputs(pipeline)
    first_generation_s = None
    if pipeline.compiled:  # compile outside the timed calls
        started = time.perf_counter()
        pipeline.generate(n=batch, seed=0, **inputs)
        first_generation_s = time.perf_counter() - started

    def first_slice():
        for _ in pipeline.stream(n=batch, seed=0, **inputs):
            break

    first = measure(first_slice, pipeline.device, warmup=1, repeats=repeats, slow_s=5.0)
    video = measure(lambda: pipeline.generate(n=batch, seed=0, **inputs), pipeline.device, warmup=0,
                    repeats=repeats)
    return first, video, first_generation_s


def benchmark_size(size: ModelSize, args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    vqvae, prior = build_models(size, args.cond, device)
    pipeline = VideoGPTPipeline(vqvae, prior, device=device, amp_dtype=AMP_DTYPES[args.amp], compile=args.compile,
                                quantize=args.quantize, decode_mode=args.decode_mode)
    t, h, w = prior.latent_shape
    length, slice_len = t * h * w, h * w
    rows = []
    for batch in args.batch:
        inputs = random_conditions(prior, batch, device)
        kept_states = pipeline.decode_step.kept_states

        def start_generation():
            state = prior.start_decoding(batch, quantize=args.quantize, static=kept_states,
                                         conditions=Conditions(**inputs))
            prior.prefill(state)
            state.release()

        with torch.no_grad():
            # What a generation pays once: conditioning (frame encoder), cache allocation, the start token.
            start = measure(start_generation, device, repeats=3)
            first_codes = torch.zeros(batch, 1, h, w, dtype=torch.long, device=device)
            all_codes = torch.zeros(batch, t, h, w, dtype=torch.long, device=device)
            decode_first = measure(lambda: pipeline.decode(first_codes), device, repeats=3, slow_s=2.0)
            decode_all = measure(lambda: pipeline.decode(all_codes), device, repeats=3, slow_s=2.0)
        common = dict(size=size.name, batch=batch, tokens=length, start_s=start.median_s,
                      decode_first_slice_s=decode_first.median_s, decode_video_s=decode_all.median_s)

        ours = time_our_windows(prior, batch, inputs, args.window, device, args.amp, args.repeats, args.quantize,
                                pipeline.decode_step)
        points = [(r["position"], r["step_s"]) for r in ours]
        tokens_s = total_time(points, 0, length)
        row = dict(common, sampler="ours (KV cache)" + (f", {args.quantize}" if args.quantize else ""), windows=ours,
                   ms_per_step=1000 * tokens_s / length, tokens_per_s=batch * length / tokens_s,
                   cpu_ms_per_step=1000 * total_time([(r["position"], r["cpu_step_s"]) for r in ours], 0, length)
                   / length,
                   first_slice_s=start.median_s + total_time(points, 0, slice_len)
                   + decode_first.median_s,
                   video_s=start.median_s + tokens_s + decode_all.median_s,
                   how=f"{len(ours)} windows x {ours[0]['tokens']} tokens, interpolated")
        if args.full:
            first, video, first_generation_s = time_first_slice_and_video(pipeline, batch, repeats=1)
            row.update(first_slice_s=first.median_s, video_s=video.median_s, first_generation_s=first_generation_s,
                       how=row["how"] + "; first slice + video measured end to end")
        if kept_states:  # graphs CUDA graph trees refused to capture so far ("skipping cudagraphs due to ...")
            from torch._dynamo.utils import counters

            row["cudagraph_skips"] = counters["inductor"]["cudagraph_skips"]
        rows.append(row)

        if not args.no_reference:
            rows.append(reference_row(prior, batch, inputs, args, device, common, decode_first.median_s,
                                      decode_all.median_s))
            row["vs_reference"] = rows[-1]["video_s"] / row["video_s"]
            row["vs_reference_cpu"] = rows[-1]["cpu_ms_per_step"] / row["cpu_ms_per_step"]
        if not args.no_naive:
            rows.append(naive_row(prior, batch, inputs, args, device, common, start.median_s, decode_first.median_s,
                                  decode_all.median_s))
            row["speedup"] = rows[-1]["video_s"] / row["video_s"]
    return rows


def reference_row(prior, batch: int, inputs: dict, args: argparse.Namespace, device: torch.device, common: dict,
                  decode_first_s: float, decode_all_s: float) -> dict[str, Any]:
    """The reference implementation's algorithm on the same weights, timed in the same windows as ours."""
    t, h, w = prior.latent_shape
    length, slice_len = t * h * w, h * w
    reference = time_reference_windows(prior, batch, inputs, args.window, device, args.amp, args.repeats)
    points = [(r["position"], r["step_s"]) for r in reference]
    reference_s = total_time(points, 0, length)
    reference_start = reference_start_s(prior, batch, inputs, device)
    cpu_s = total_time([(r["position"], r["cpu_step_s"]) for r in reference], 0, length)
    return dict(common, sampler="reference algorithm", windows=reference, start_s=reference_start,
                ms_per_step=1000 * reference_s / length, tokens_per_s=batch * length / reference_s,
                cpu_ms_per_step=1000 * cpu_s / length,
                first_slice_s=reference_start + total_time(points, 0, slice_len) + decode_first_s,
                video_s=reference_start + reference_s + decode_all_s,
                how=f"{len(reference)} windows x {reference[0]['tokens']} tokens, interpolated")


def naive_row(prior, batch: int, inputs: dict, args: argparse.Namespace, device: torch.device, common: dict,
              start_s: float, decode_first_s: float, decode_all_s: float) -> dict[str, Any]:
    """The teacher-forced forward re-run for every token, a few positions timed, the video extrapolated."""
    t, h, w = prior.latent_shape
    length, slice_len = t * h * w, h * w
    naive = time_naive_points(prior, batch, inputs, args.naive_points, device, args.amp, args.naive_repeats)
    points = [(r["position"], r["step_s"]) for r in naive]
    naive_s = total_time(points, 0, length, quadratic=True)
    return dict(common, sampler="naive (no cache)", windows=naive,
                ms_per_step=1000 * naive_s / length, tokens_per_s=batch * length / naive_s,
                first_slice_s=start_s + total_time(points, 0, slice_len, quadratic=True) + decode_first_s,
                video_s=start_s + naive_s + decode_all_s,
                how=f"{len(naive)} positions x {naive[0]['tokens']} token, extrapolated")


def benchmark_checkpoint(args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    pipeline = load_pipeline(args.checkpoint, device=device, threads=args.threads, compile=args.compile,
                             amp_dtype=AMP_DTYPES[args.amp], quantize=args.quantize, decode_mode=args.decode_mode)
    t, h, w = pipeline.prior.latent_shape
    rows = []
    for batch in args.batch:
        first, video, first_generation_s = time_first_slice_and_video(pipeline, batch, args.repeats_full)
        tokens = t * h * w
        rows.append(dict(size=str(args.checkpoint), batch=batch, tokens=tokens, sampler="pipeline",
                         first_slice_s=first.median_s, video_s=video.median_s, first_generation_s=first_generation_s,
                         ms_per_step=1000 * video.median_s / tokens, tokens_per_s=batch * tokens / video.median_s,
                         how=f"end to end, median of {len(video.runs)} (video includes the VQ-VAE decode)"))
    return rows


COLUMNS = [("size", "size"), ("batch", "batch"), ("sampler", "sampler"), ("ms_per_step", "ms/token step"),
           ("cpu_ms_per_step", "CPU ms/token"),
           ("tokens_per_s", "tokens/s"), ("first_slice_s", "first slice s"), ("video_s", "video s"),
           ("vs_reference", "x reference"), ("vs_reference_cpu", "x reference (CPU)"), ("speedup", "x naive"),
           ("first_generation_s", "first generation s (compiles)"), ("how", "how")]


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--batch", type=positive_ints, default=[1, 8], help="comma-separated batch sizes")
    parser.add_argument("--cond", choices=CONDITIONS, default="none",
                        help="conditioning of the random priors (the reference BAIR prior: frame)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the decode step, as the pipeline does")
    parser.add_argument("--decode-mode", choices=DECODE_MODES, default=None,
                        help="how the decode step runs, instead of what --compile chooses for the device")
    parser.add_argument("--amp", choices=list(AMP_DTYPES), default="none", help="autocast dtype")
    parser.add_argument("--quantize", choices=QUANTIZE_MODES, default=None,
                        help="int8 prior weights in the cached decode step (CPU only; the naive sampler stays float)")
    parser.add_argument("--window", type=int, default=16, help="tokens timed per window (ours)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per window (median)")
    parser.add_argument("--naive-points", type=int, default=3, help="positions timed for the naive sampler")
    parser.add_argument("--naive-repeats", type=int, default=1, help="timed tokens per naive position (median)")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive sampler")
    parser.add_argument("--no-reference", action="store_true", help="skip the reference implementation's algorithm")
    parser.add_argument("--full", action="store_true",
                        help="also measure the first slice and a whole video end to end (slow at the bair size)")
    parser.add_argument("--checkpoint", type=Path, default=None, metavar="DIR",
                        help="time this pipeline folder end to end instead of random models")
    parser.add_argument("--repeats-full", type=int, default=1, help="end-to-end repeats with --checkpoint")
    args = parser.parse_args(argv)
    if args.window < 1 or args.repeats < 1 or args.naive_points < 2 or args.naive_repeats < 1:
        parser.error("--window, --repeats and --naive-repeats must be >= 1, --naive-points >= 2")
    return args


def random_model_notes(args: argparse.Namespace) -> list[str]:
    """How the random models' rows were measured."""
    return [
        f"random weights; conditioning: {args.cond}; temperature 1, no top-k / top-p; no guidance "
        "(guidance doubles the batch)",
        f"ours: per-token time measured in windows of {args.window} tokens at the start, middle and end of "
        "the sequence (decode_step + filter + draw, median of repeats; the cache before a window holds "
        "noise, which costs the same as real keys and values) and interpolated linearly over all "
        "positions; not every token of a video was timed" + ("" if args.full else " (--full measures it)"),
        "reference algorithm: the reference implementation's sampler re-implemented on the same weights "
        "(benchmarks/reference_sampler.py: per token a codebook lookup of the whole grid, the whole position "
        "table, separate q/k/v projections, attention over the whole per-layer KV cache under a dense mask "
        "row, plain torch.multinomial), timed in the same windows as ours; x reference = its video time / "
        "ours (wall), and its CPU ms/token / ours",
        f"naive: re-runs the teacher-forced forward over the whole growing sequence for every token (no "
        f"cache; conditioning computed once); ONE token timed at each of {args.naive_points} positions "
        "(first to last) and the whole video EXTRAPOLATED with the quadratic in the position through them "
        "(linear interpolation for 2 positions)",
        "first slice = start (conditioning + cache + start token) + the first h*w tokens + VQ-VAE decode of "
        "one slice; video (the model's sequence length: 16 frames for demo and bair) = start + all tokens + "
        "one VQ-VAE decode of the whole grid (as generate()); x faster = naive video time / ours",
        "ms/token step: one step samples a token for every video in the batch; tokens/s counts all of them",
    ]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_arguments(argv)
    device = setup_device(args.device, args.threads)
    started = time.perf_counter()
    notes = []
    if args.checkpoint is not None:
        rows = benchmark_checkpoint(args, device)
        title = "sampling, pipeline end to end"
        notes.append("first slice: from the call until stream() yields the first decoded latent slice "
                     "(frames on screen); video: a whole generate() with the VQ-VAE decode")
    else:
        rows = []
        for size in args.sizes:
            rows += benchmark_size(size, args, device)
        title = "sampling, ours vs the reference algorithm vs naive"
        notes += [f"{size.name}: {size.description}" for size in args.sizes]
        notes += random_model_notes(args)
    if args.quantize:
        notes.append(f"--quantize {args.quantize}: the cached decode step's linear layers use {args.quantize} weights "
                     "(one scale per output channel) and bfloat16 activations")
    notes.append(f"benchmark wall time {time.perf_counter() - started:.0f} s")
    report(title, MODULE, device, rows, COLUMNS, notes, args.json,
           extra=dict(settings={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                                if k not in ("sizes", "json")} | dict(sizes=[s.name for s in args.sizes])))
    return dict(rows=rows)


if __name__ == "__main__":
    main()

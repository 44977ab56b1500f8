"""Greedy samples and logits of every shipped model, recorded to a file or compared with a record.

A change to the sampling code that should not change what is sampled keeps this record identical: float32,
int8, guidance, a video prediction from given frames, a sliding window past the trained length, and Play.

    python -m benchmarks.sampling_equality --record before.pt
    python -m benchmarks.sampling_equality --compare before.pt
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from videogpt_core.inference.pipeline import load_pipeline
from videogpt_core.inference.play import PlaySession
from videogpt_core.inference.sampling_options import SamplingOptions
from videogpt_core.io.video_io import read_image, read_video
from videogpt_core.models.conditions import Conditions
from videogpt_core.models.model_folders import find_pipeline_folders

CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"
EXAMPLES = Path(__file__).resolve().parent.parent / "demo" / "examples"
PLAY_STEPS = 2  # from a clip one slice short of the window: the second step slides it


def example_inputs(name: str, pipeline, n_frames: int) -> dict:
    """The conditioning a shipped model takes: a test frame, a class, actions in the trained range."""
    cfg = pipeline.config
    inputs = {}
    if cfg.n_cond_frames:
        inputs["frames"] = read_image(EXAMPLES / f"{name}-test-0.png")
    if cfg.n_classes:
        inputs["label"] = 3
    if cfg.action_dim:
        low, high = np.asarray(cfg.action_range, dtype=np.float32).T
        rows = np.random.default_rng(0).uniform(size=(n_frames, cfg.action_dim)).astype(np.float32)
        inputs["actions"] = low + rows * (high - low)
    return inputs


def greedy(pipeline, n_frames: int, cfg_scale: float | None = None, **inputs) -> torch.Tensor:
    if "actions" in inputs:
        inputs["actions"] = inputs["actions"][:n_frames]  # one row per output frame
    options = SamplingOptions(top_k=1, cfg_scale=cfg_scale)
    result = pipeline.generate(n=1, options=options, seed=0, n_frames=n_frames, **inputs)
    return result.codes


def cached_logits(pipeline, codes: torch.Tensor, quantize: str | None, **inputs) -> torch.Tensor:
    """Logits (1, L, n_codes) of every position of one window's codes, through the KV-cached decode path."""
    prior = pipeline.prior
    conditions = model_inputs(pipeline, **inputs)
    state = prior.start_decoding(1, quantize=quantize, conditions=Conditions(**conditions))
    flat = codes[:, : prior.latent_shape[0]].flatten(1)
    with torch.no_grad():
        first = prior.prefill(state)
        rest = prior.verify(state, flat[:, :-1], 1)
    state.release()
    return torch.cat([first[:, None], rest], dim=1)


def model_inputs(pipeline, frames=None, label=None, actions=None) -> dict:
    """The prior's tensors for these user inputs (one window)."""
    cfg = pipeline.config
    out = {}
    if frames is not None:
        out["frames"] = pipeline.prepare_frames(frames)[:, :, : cfg.n_cond_frames]
    if label is not None:
        out["labels"] = torch.tensor([pipeline.label_index(label)])
    if actions is not None:
        out["actions"] = pipeline.prepare_actions(actions[: cfg.sequence_length], cfg.sequence_length)[None]
    return out


def play(pipeline, frames, actions: np.ndarray) -> np.ndarray:
    session = PlaySession(pipeline, frames, options=SamplingOptions(top_k=1), seed=0)
    for step in range(PLAY_STEPS):
        session.step(actions[step])
    return session.frames


def record_model(name: str, folder: Path) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    pipeline = load_pipeline(folder, device="cpu")
    int8 = load_pipeline(folder, device="cpu", quantize="int8")
    window, fpl = pipeline.sequence_length, pipeline.config.frames_per_latent
    longer = window + fpl  # a second window of one new slice
    inputs = example_inputs(name, pipeline, longer)
    one_window = {k: (v[:window] if k == "actions" else v) for k, v in inputs.items()}
    out = {}
    # Shorter than a window where a mode needs no more (the box that runs this may be slow).
    out["float32"] = greedy(pipeline, 2 * fpl, **one_window)
    out["int8"] = greedy(int8, fpl, **one_window)
    out["guidance"] = greedy(pipeline, fpl, cfg_scale=2.0, **one_window)
    codes = out["sliding"] = greedy(pipeline, longer, **inputs)
    out["logits_float32"] = cached_logits(pipeline, codes, None, **one_window)
    out["logits_int8"] = cached_logits(int8, codes, "int8", **one_window)
    with torch.no_grad():
        out["logits_forward"] = pipeline.prior(codes[:, : pipeline.prior.latent_shape[0]],
                                               **model_inputs(pipeline, **one_window))
    clips = [EXAMPLES / f"{name}-clip.mp4", EXAMPLES / f"{name}-test-clip.mp4"]
    clip = next((path for path in clips if path.is_file()), None)
    if clip is not None:  # a video prediction: the given frames' codes are the prefix
        given = read_video(clip, max_frames=window - fpl)
        out["prediction"] = greedy(pipeline, window, **dict(one_window, frames=given[: 2 * fpl]))
        if pipeline.config.action_dim and not pipeline.config.n_classes:
            out["play"] = torch.from_numpy(play(pipeline, given, inputs["actions"]))
    return {f"{name}/{key}": value for key, value in out.items()}


def record(checkpoints: Path) -> dict[str, torch.Tensor]:
    results = {}
    for name, folder in sorted(find_pipeline_folders([checkpoints]).items()):
        print(f"{name} ...", file=sys.stderr, flush=True)
        results.update(record_model(name, folder))
    return results


def compare(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> list[str]:
    """One line per difference (missing entries included); empty when identical."""
    lines = [f"{key}: missing now" for key in sorted(set(before) - set(after))]
    lines += [f"{key}: new" for key in sorted(set(after) - set(before))]
    for key in sorted(set(before) & set(after)):
        old, new = before[key], after[key]
        if old.shape != new.shape:
            lines.append(f"{key}: shape {tuple(old.shape)} -> {tuple(new.shape)}")
        elif not torch.equal(old, new):
            differ = (old != new).sum().item()
            largest = (old.double() - new.double()).abs().max().item()
            lines.append(f"{key}: {differ} of {old.numel()} values differ (largest {largest:.3g})")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--record", metavar="FILE", help="write the samples and logits to FILE")
    action.add_argument("--compare", metavar="FILE", help="compare with a record written by --record")
    parser.add_argument("--checkpoints", default=str(CHECKPOINTS), help="a folder of pipeline folders")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = record(Path(args.checkpoints))
    if args.record:
        torch.save(results, args.record)
        print(f"recorded {len(results)} entries to {args.record}")
        return 0
    differences = compare(torch.load(args.compare), results)
    for line in differences:
        print(line)
    print(f"{len(results)} entries: " + ("identical" if not differences else f"{len(differences)} differ"))
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())

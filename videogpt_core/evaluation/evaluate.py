"""`videogpt eval` as a function: load the checkpoint and the data, decide which parts can run (and why the
others cannot), run them - reconstruction.py, prior_bits.py, FVD (videogpt_core/fvd), worlds.py - and report
everything as one JSON-ready dict."""
from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from videogpt_core.evaluation.clips import unmet_conditions
from videogpt_core.evaluation.inputs import open_eval_dataset
from videogpt_core.evaluation.prior_bits import prior_scores
from videogpt_core.evaluation.reconstruction import reconstruction_scores
from videogpt_core.evaluation.worlds import check_rollout_frames, check_world_frames, world_scores, world_unfit_reason
from videogpt_core.fvd.fvd import PROTOCOL_CLIPS, fvd_scores, load_feature_model
from videogpt_core.inference.pipeline import VideoGPTPipeline
from videogpt_core.inference.sampling_options import SamplingOptions
from videogpt_core.models.checkpoints import load_codec_and_prior
from videogpt_core.models.prior import VideoGPT
from videogpt_core.models.vqvae import VQVAE

PARTS = ("recon", "prior", "fvd", "world")


def parse_parts(what: str | list[str] | tuple[str, ...] | None) -> list[str] | None:
    """The parts named by --what (a comma-separated string or a list), or None for every part that applies."""
    if what is None:
        return None
    parts = [part.strip() for part in what.split(",")] if isinstance(what, str) else list(what)
    parts = [part for part in parts if part]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or not parts:
        raise ValueError(f"--what takes a comma-separated list of {', '.join(PARTS)}; got {what!r}")
    return parts


def _check_counts(max_clips: int | None, **counts: tuple[int, int]) -> None:
    """Each count (value, lowest allowed) must be a whole number; max_clips may also be None (all)."""
    for name, (value, low) in counts.items():
        if int(value) != value or value < low:
            raise ValueError(f"{name} must be a whole number >= {low}, got {value!r}")
    if max_clips is not None and (int(max_clips) != max_clips or max_clips < 1):
        raise ValueError(f"max_clips must be a whole number >= 1 (or None for all), got {max_clips!r}")


def _check_paths(data: Path, i3d: str | os.PathLike | None) -> None:
    if i3d is not None and not Path(i3d).exists():
        raise FileNotFoundError(f"I3D model not found: {i3d}. --i3d takes a folder from `videogpt convert-i3d` "
                                "(or a TorchScript detector file); nothing is downloaded")
    if not data.exists():
        raise FileNotFoundError(f"data set not found: {data}; pass an .hdf5 file or a folder of videos")


def _load_models(checkpoint, device: torch.device, quantize: str | None, options: SamplingOptions
                 ) -> tuple[VQVAE, VideoGPT | None, VideoGPTPipeline | None]:
    """The checkpoint's VQ-VAE on the device, its prior (or None) and a pipeline around both (or None); the
    sampling options are checked against the prior."""
    vqvae, prior = load_codec_and_prior(checkpoint)
    pipeline = None
    if prior is not None:
        # The VQ-VAE in float32 for evaluation; the prior's decode step as asked (int8 to measure its cost).
        pipeline = VideoGPTPipeline(vqvae, prior, device=device, vqvae_bf16=False, quantize=quantize)
        options.check_for(prior)
    return vqvae.to(device).eval(), prior, pipeline


def _unrunnable_parts(prior: VideoGPT | None, dataset: Dataset, world: str | None, i3d, requested) -> dict[str, str]:
    """Why each part that cannot run (or runs only when asked) is left out."""
    reasons: dict[str, str] = {}
    unmet = None if prior is None else unmet_conditions(prior.config, dataset[0])
    if prior is None:
        for part in ("prior", "world"):  # fvd: R-FVD of the codec alone
            reasons[part] = "the checkpoint is a VQ-VAE folder (no prior)"
    elif unmet:
        reasons["prior"] = reasons["fvd"] = unmet
    if "fvd" not in reasons and i3d is None and requested is None:
        reasons["fvd"] = "runs with --what fvd or --i3d DIR (minutes of I3D on a CPU)"
    if "world" not in reasons and (unfit := world_unfit_reason(world, prior.config)):
        reasons["world"] = unfit
    return reasons


def _parts_to_run(requested: list[str] | None, reasons: dict[str, str]) -> list[str]:
    parts = [part for part in PARTS if part not in reasons] if requested is None else requested
    for part in parts:
        if part in reasons:
            raise ValueError(f"cannot evaluate '{part}': {reasons[part]}")
    return parts


def _skipped(reasons: dict[str, str], parts: list[str], requested: list[str] | None) -> dict[str, str]:
    skipped = {part: reason for part, reason in reasons.items() if part not in parts}
    if requested is not None:
        skipped.update({part: "not asked for (--what)" for part in PARTS if part not in parts and part not in skipped})
    return skipped


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def _report_header(checkpoint, data: Path, split: str, command: str | None, device: torch.device, seed: int,
                   vqvae, prior: VideoGPT | None, dataset: Dataset, n_clips: int, frame_stride: int,
                   world: str | None, sampling: dict[str, Any]) -> dict[str, Any]:
    """What was evaluated, on what, how (`sampling`: the settings as given): the report's fields before the
    scores."""
    vq_config = vqvae.config
    result: dict[str, Any] = {
        "checkpoint": str(Path(checkpoint).resolve()),
        "checkpoint_kind": "pipeline" if prior is not None else "vqvae",
        "data": str(data.resolve()),
        "split": split,
        "command": command,
        "device": _device_name(device),
        "torch_version": torch.__version__,
        "seed": seed,
        "model": {"sequence_length": vq_config.sequence_length, "resolution": vq_config.resolution,
                  "latent_shape": list(vqvae.latent_shape), "n_codes": vqvae.n_codes},
        "dataset": {"clips": len(dataset), "clips_evaluated": n_clips, "frame_stride": frame_stride,
                    "world": world},
    }
    if prior is not None:
        cfg = prior.config
        result["model"]["conditioning"] = {"n_cond_frames": cfg.n_cond_frames, "n_classes": cfg.n_classes,
                                           "action_dim": cfg.action_dim}
        result["sampling"] = sampling
    return result


def json_safe(value: Any) -> Any:
    """Plain JSON values: numpy scalars to Python, non-finite floats (undefined scores) to None."""
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def evaluate(checkpoint: str | os.PathLike, data: str | os.PathLike, *, split: str = "test",
             what: str | list[str] | None = None, max_clips: int | None = None, batch_size: int = 8,
             device: str | torch.device | None = None, seed: int = 0, frame_stride: int = 1,
             i3d: str | os.PathLike | None = None, fvd_samples: int = PROTOCOL_CLIPS, world_samples: int = 16,
             world_frames: int | None = None, world_rollout_frames: int | None = None,
             options: SamplingOptions | None = None, quantize: str | None = None, digit_classifier: str | os.PathLike | None = None,
             save_digit_classifier: str | os.PathLike | None = None, digit_classifier_steps: int = 400,
             progress: bool = False, command: str | None = None) -> dict[str, Any]:
    """Evaluate a VQ-VAE folder (reconstruction only) or a pipeline folder on a data set; returns a JSON-ready
    dict. `what` picks parts among recon, prior, fvd, world (default: every part that applies; a part named
    explicitly that cannot run raises ValueError). world_frames: the action worlds' episodes are also rolled
    out to that many frames, past the prior's window; world_rollout_frames: the frames of vizdoom's and
    fetchpush's other world scores (default: the window). Undefined numbers (e.g. nothing found) are None."""
    started = time.perf_counter()
    requested = parse_parts(what)
    _check_counts(max_clips, batch_size=(batch_size, 1), fvd_samples=(fvd_samples, 2),
                  world_samples=(world_samples, 1), frame_stride=(frame_stride, 1),
                  digit_classifier_steps=(digit_classifier_steps, 1))
    options = options or SamplingOptions()
    data = Path(data)
    _check_paths(data, i3d)

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    vqvae, prior, pipeline = _load_models(checkpoint, device, quantize, options)
    dataset = open_eval_dataset(data, vqvae.config.sequence_length, vqvae.config.resolution, split, frame_stride)
    n_clips = len(dataset) if max_clips is None else min(int(max_clips), len(dataset))
    world = getattr(dataset, "world", None)

    reasons = _unrunnable_parts(prior, dataset, world, i3d, requested)
    parts = _parts_to_run(requested, reasons)
    if "world" in parts:  # a bad --world-frames fails before the slow parts too
        check_world_frames(world_frames, world, prior.config)
        check_rollout_frames(world_rollout_frames, world, prior.config, vqvae.config.per_frame)
    # A missing or bad I3D fails before the slow parts.
    i3d_model, i3d_source = load_feature_model(i3d, device) if "fvd" in parts else (None, None)

    result = _report_header(checkpoint, data, split, command, device, seed, vqvae, prior, dataset, n_clips,
                            frame_stride, world, {**dataclasses.asdict(options), "quantize": quantize})
    scorers = {  # part -> (its key in the report, what computes it)
        "recon": ("reconstruction", lambda: reconstruction_scores(vqvae, dataset, n_clips, batch_size, device,
                                                                  progress)),
        "prior": ("prior", lambda: prior_scores(vqvae, pipeline.prior, dataset, n_clips, batch_size, device, progress)),
        "fvd": ("fvd", lambda: fvd_scores(vqvae, pipeline, dataset, i3d_model, i3d_source, fvd_samples,
                                          batch_size, options, seed, progress)),
        "world": ("world", lambda: world_scores(
            pipeline, data, world, samples=world_samples, batch_size=batch_size, options=options, seed=seed,
            frame_stride=frame_stride, max_clips=max_clips, digit_classifier=digit_classifier,
            save_digit_classifier=save_digit_classifier, digit_classifier_steps=digit_classifier_steps,
            world_frames=world_frames, rollout_frames=world_rollout_frames, progress=progress)),
    }
    timings: dict[str, float] = {}
    for part, (name, score) in scorers.items():
        if part in parts:  # in PARTS order, whatever the order asked
            tic = time.perf_counter()
            result[name] = score()
            timings[name] = time.perf_counter() - tic
    result["skipped"] = _skipped(reasons, parts, requested)
    result["timings_s"] = timings
    result["wall_time_s"] = time.perf_counter() - started
    return json_safe(result)

"""The clips that evaluation scores: the first n items of a data set in fixed batches, the prior's conditions
taken from them, and samples drawn one per row under each row's own conditions (FVD and the world scores
compare these with the real clips), e.g. rollouts from true first frames under chosen actions."""
from __future__ import annotations

import sys
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from videogpt_core.data.transforms import resize_center_crop, to_model_video
from videogpt_core.inference.pipeline import VideoGPTPipeline
from videogpt_core.inference.sampling import WindowSampler, generate_codes
from videogpt_core.inference.sampling_options import SamplingOptions
from videogpt_core.models.conditions import Conditions
from videogpt_core.models.sliding_window import slices_for

WORLD_SPLIT = "test"  # world-model rollouts always start from held-out episodes


def batches(dataset: Dataset, n: int, batch_size: int, desc: str, progress: bool) -> Iterator[dict]:
    """The first n items of dataset, collated into batches, in order."""
    loader = DataLoader(Subset(dataset, range(n)), batch_size=batch_size, shuffle=False, num_workers=0)
    yield from tqdm(loader, desc=desc, disable=not progress, file=sys.stderr, leave=False)


def unmet_conditions(config, item: dict) -> str | None:
    """Why the data cannot feed this prior's conditions (labels, actions), or None when it can."""
    if config.n_classes and "label" not in item:
        return f"the prior is class-conditional ({config.n_classes} classes) but the data has no labels"
    if config.action_dim:
        if "actions" not in item:
            return f"the prior is action-conditional (action_dim={config.action_dim}) but the data has no actions"
        if item["actions"].shape[-1] != config.action_dim:
            return (f"the prior takes {config.action_dim} numbers per action but the data has "
                    f"{item['actions'].shape[-1]}")
    return None


def resize_clips(clips: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, T, H, W, 3) -> (N, T, size, size, 3) (resize + centre crop; a no-op at that size)."""
    if clips.shape[2:4] == (size, size):
        return clips
    return np.stack([resize_center_crop(clip, size) for clip in clips])


@torch.no_grad()
def sample_clips(pipeline: VideoGPTPipeline, batch: int, options: SamplingOptions, generator: torch.Generator,
                 frames: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                 actions: torch.Tensor | None = None, prefix_video: torch.Tensor | None = None,
                 n_frames: int | None = None) -> np.ndarray:
    """One clip per row, each with its own conditions (unlike pipeline.generate, which shares one condition
    across its samples): frames (B, 3, k, res, res) for cross-attention, labels (B,), actions (B, T, A), or
    prefix_video (B, 3, k, res, res) whose codes start the grid (video prediction). n_frames: the clip's
    frames, by default the prior's sequence_length; more slide the window along (see `_sliding_codes`).
    Returns uint8 (B, T, H, W, 3)."""
    config = pipeline.prior.config
    n_frames = config.sequence_length if n_frames is None else n_frames
    prefix = None
    if prefix_video is not None:  # encoded inside a whole window, as the pipeline's video prediction does
        n_slices = prefix_video.shape[2] // config.frames_per_latent
        prefix = pipeline.encode_prefix(prefix_video.to(pipeline.device), n_slices).flatten(1)
    if actions is not None:
        actions = actions[:, :max(n_frames, config.sequence_length)]
    conditions = Conditions(frames=frames, labels=labels, actions=actions, prefix=prefix)
    if n_frames > config.sequence_length:
        return pipeline.decode(_sliding_codes(pipeline, batch, conditions, options, generator, n_frames))[:, :n_frames]
    codes = None
    for codes, _ in generate_codes(pipeline.prior, batch, conditions, options=options, generator=generator,
                                   quantize=pipeline.quantize):
        pass
    return pipeline.decode(codes)[:, :n_frames]


def _sliding_codes(pipeline: VideoGPTPipeline, batch: int, conditions: Conditions, options: SamplingOptions,
                   generator: torch.Generator, n_frames: int) -> torch.Tensor:
    """Codes (B, slices, h, w) of clips longer than the prior's window: each full window slides to its last
    t - 1 slices as sampled (WindowSampler.slid, as Play does), the next slices' action rows given as they come.
    Only a per-frame codec's codes stand for their frames alone, wherever the window begins; a frame-conditional
    prior is not supported (its later windows would need frames decoded on the way)."""
    config, prior = pipeline.config, pipeline.prior
    if not pipeline.vqvae.config.per_frame or config.n_cond_frames:
        raise ValueError(f"clips longer than the window ({config.sequence_length} frames) are sampled here for "
                         "per-frame codecs without first-frame cross-attention; this model rolls out past its "
                         "window through pipeline.generate (--world-frames)")
    fpl, t = config.frames_per_latent, prior.latent_shape[0]
    all_actions = conditions.actions
    window = WindowSampler(prior, batch, conditions.replace(
        actions=None if all_actions is None else all_actions[:, :config.sequence_length]),
        options=options, generator=generator, quantize=pipeline.quantize)
    slices = [window.grid()]
    for index in range(window.slices_done, slices_for(n_frames, fpl)):
        if window.full:
            window = window.slid(t - 1)
        # The first window was given its rows whole; a slid one gets each new slice's rows as it comes.
        rows = all_actions[:, index * fpl:(index + 1) * fpl] if window.rows_to_come else None
        slices.append(window.next_slice(rows)[:, None])
    window.release()
    return torch.cat(slices, dim=1)


def first_frames_condition(config, clips: np.ndarray, device: torch.device, source: str) -> tuple[dict, str]:
    """Sampler arguments that condition on the first frames of uint8 clips (B, T, H, W, 3) as the pipeline
    does with those frames, and a description: the prior's cross-attended frames, and the whole latent slices
    they fill as a code prefix (a one-frame slice of a time-causal codec: the first frame itself)."""
    fpl = config.frames_per_latent
    k = config.n_cond_frames or fpl
    video = torch.stack([to_model_video(resize_center_crop(clip[:k], config.resolution)) for clip in clips])
    frames = "the first frame" if k == 1 else f"the first {k} frames"
    condition, how = {}, []
    if config.n_cond_frames:
        condition["frames"] = video.to(device)
        how.append("cross-attended")
    if k >= fpl:
        condition["prefix_video"] = video[:, :, : k - k % fpl]
        how.append("as a code prefix")
    return condition, f"{frames} of {source} ({' and '.join(how)})"


def sample_rollouts(pipeline: VideoGPTPipeline, truth: np.ndarray, action_sets: dict[str, torch.Tensor],
                    batch_size: int, options: SamplingOptions, seed: int) -> tuple[dict[str, np.ndarray], str]:
    """One sampled rollout per true episode (uint8 (N, T, H, W, 3)) and action set ((N, T, A) each), from the
    episode's true first frame(s), as long as the true episodes (past the prior's window: see sample_clips),
    resized to the stored frame size; and how they were conditioned. The action sets share one generator,
    batch by batch."""
    config, device = pipeline.prior.config, pipeline.device
    generator = torch.Generator(device=device).manual_seed(seed)
    conditioning = ""
    rollouts: dict[str, list[np.ndarray]] = {name: [] for name in action_sets}
    for start in range(0, len(truth), batch_size):
        rows = slice(start, min(start + batch_size, len(truth)))
        condition, conditioning = first_frames_condition(config, truth[rows], device, "the true rollout")
        for name, actions in action_sets.items():
            clips = sample_clips(pipeline, len(truth[rows]), options, generator,
                                 actions=actions[rows].to(device), n_frames=truth.shape[1], **condition)
            rollouts[name].append(resize_clips(clips, truth.shape[2]))
    return {name: np.concatenate(parts) for name, parts in rollouts.items()}, conditioning

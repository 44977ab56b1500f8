"""Generating and continuing videos for the Generate tab: inputs checked, pipeline.stream run with a live
preview after every latent slice, then the mp4 and GIF written; the result is kept (WorldSession) so that
Continue can extend one sample with new actions."""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from demo.action_input import actions_from_table
from demo.action_presets import action_column_names
from demo.display_images import display_scale, progress_grid, tile_samples
from demo.input_checks import load_start_image, pick_seed, whole_number
from demo.model_registry import ModelInfo, ModelRegistry
from demo.output_store import OutputStore
from demo.sampling_controls import sampling_options
from demo.user_errors import user_errors
from videogpt_core.inference.sampling_options import SamplingOptions
from videogpt_core.io.video_io import write_gif, write_mp4
from videogpt_core.models.action_range import check_actions_in_range
from videogpt_core.models.sliding_window import continuation_frames, given_slices, slices_for

MAX_SAMPLES = 4
DEFAULT_FPS = 10  # the built-in worlds' frame rate


@dataclass
class WorldSession:
    """The last result, kept in gr.State so `continue_generation` can extend it."""

    model_name: str
    frames: np.ndarray  # (n, T, H, W, 3) uint8: every sample's whole trajectory so far
    actions: np.ndarray | None  # (T, action_dim): the commands behind the trajectory (shared by the samples)
    label: str | None


@dataclass
class GenerationUpdate:
    """One step of a streaming generation: the live preview and progress, then the finished files."""

    preview: np.ndarray  # uint8 image (grid of the frames so far)
    progress: str  # markdown
    video: str | None = None  # H.264 mp4 (all samples side by side, upscaled)
    gif: str | None = None
    seed: int | None = None
    session: WorldSession | None = None
    tokens_done: int = 0
    tokens_total: int = 0

    @property
    def finished(self) -> bool:
        return self.video is not None


def start_frames(info: ModelInfo, image: np.ndarray | None) -> np.ndarray | None:
    """The uploaded image as the frames the pipeline takes: the conditioning frame(s) of a frame-conditional
    model, or the first latent slice held still for a model that can continue a prefix."""
    if image is None:
        return None
    if info.needs_frames:
        count = info.prior_config.n_cond_frames
    elif info.latent_shape[0] > 1:
        count = info.frames_per_latent
    else:
        return None  # this model has no use for an image: ignore it
    return np.repeat(image[None], count, axis=0)


def _prefix_slices(info: ModelInfo, frames: np.ndarray | None, n_frames: int) -> int:
    """Latent slices that the pipeline encodes from the given frames instead of sampling (as it decides)."""
    if frames is None:
        return 0
    fpl = info.frames_per_latent
    return given_slices(len(frames), fpl, info.latent_shape[0], slices_for(n_frames, fpl))


def _stream(registry: ModelRegistry, store: OutputStore, info: ModelInfo, *, n: int, frames, label, actions,
            options: SamplingOptions, seed: int, n_frames: int, keep_from: int, past: np.ndarray | None,
            session_actions: np.ndarray | None, verb: str) -> Iterator[GenerationUpdate]:
    """Run pipeline.stream, yielding a preview after every latent slice, then write the mp4 and gif.

    Output frames before `keep_from` re-encode a given prefix and are dropped; `past` (n or 1, T0, H, W, 3)
    is put in front of the new frames in the final video."""
    pipeline = registry.pipeline(info.name)
    _, h, w = info.latent_shape
    prefix_tokens = _prefix_slices(info, frames, n_frames) * h * w
    new_total = n_frames - keep_from
    started = time.perf_counter()
    update = None
    for update in pipeline.stream(n, frames=frames, label=label, actions=actions, options=options, seed=seed,
                                  n_frames=n_frames):
        elapsed = time.perf_counter() - started
        sampled = max(0, update.tokens_done - prefix_tokens) * n
        rate = sampled / elapsed if elapsed > 0 else 0.0
        percent = 100.0 * update.tokens_done / max(1, update.tokens_total)
        progress = (f"{verb}: **{update.tokens_done} / {update.tokens_total} tokens** per sample ({percent:.0f}%)"
                    f" × {n} sample(s) · {rate:.0f} tokens/s · {elapsed:.1f} s")
        preview = progress_grid(update.frames[:, keep_from:], new_total)
        yield GenerationUpdate(preview, progress, tokens_done=update.tokens_done, tokens_total=update.tokens_total)
    if update is None:
        raise ValueError("the sampler produced nothing")
    elapsed = time.perf_counter() - started
    new_frames = update.frames[:, keep_from:]
    trajectory = new_frames if past is None else \
        np.concatenate([np.broadcast_to(past, (n, *past.shape[1:])), new_frames], axis=1)
    video, gif = _write_result(store, info, trajectory, seed)
    sampled = max(0, update.tokens_total - prefix_tokens) * n
    progress = (f"Done: {update.tokens_total} tokens per sample × {n} sample(s) in {elapsed:.1f} s "
                f"({sampled / max(elapsed, 1e-9):.0f} tokens/s) · seed {seed} · "
                f"{trajectory.shape[1]} frames")
    session = WorldSession(info.name, trajectory, session_actions, label)
    yield GenerationUpdate(progress_grid(new_frames, new_total), progress, video, gif, seed, session,
                           update.tokens_total, update.tokens_total)


def _write_result(store: OutputStore, info: ModelInfo, trajectory: np.ndarray, seed: int) -> tuple[str, str]:
    """The samples (n, T, H, W, 3) side by side as an upscaled mp4 and a half-size GIF; their paths."""
    folder = store.new_folder()
    tiled = tile_samples(trajectory)
    scale = display_scale(info.resolution)
    stem = f"{info.name.replace('/', '-')}-seed{seed}"
    video = write_mp4(folder / f"{stem}.mp4", tiled, DEFAULT_FPS, scale=scale)
    gif = write_gif(folder / f"{stem}.gif", tiled, DEFAULT_FPS, scale=max(1, scale // 2))
    return str(video), str(gif)


@user_errors
def generate(registry: ModelRegistry, store: OutputStore, model_name: str | None, start_image, label, actions,
             seed, randomize_seed: bool, n_samples, n_frames, *sampling) -> Iterator[GenerationUpdate]:
    """Sample new videos, streaming a preview after every latent slice; the last update holds the files.
    `sampling`: the sampling sliders' values (sampling_controls.py).

    Inputs a model does not take (a hidden control's stale value) are ignored."""
    info = registry.info(model_name)
    n = whole_number(n_samples, "number of samples", 1, MAX_SAMPLES)
    n_frames = whole_number(n_frames, "number of frames", 1, info.max_frames)
    options = sampling_options(sampling)
    seed = pick_seed(seed, bool(randomize_seed))
    frames = start_frames(info, load_start_image(start_image)) if info.takes_start_image else None
    if info.needs_frames and frames is None:
        raise ValueError("this model starts from a first frame: upload an image or pick an example frame")
    label = (str(label) if label not in (None, "") else None) if info.class_names else None
    if info.class_names and label is None:
        raise ValueError(f"choose a class: {', '.join(info.class_names)}")
    action_rows = None
    if info.action_dim:
        action_rows = _table_actions(info, actions, n_frames, "frames are asked for: give one row per frame "
                                                              "(changing the frame count resizes the table)")
    yield from _stream(registry, store, info, n=n, frames=frames, label=label, actions=action_rows,
                       options=options, seed=seed, n_frames=n_frames, keep_from=0, past=None,
                       session_actions=action_rows, verb="Sampling")


def _table_actions(info: ModelInfo, table, n_rows: int, what: str) -> np.ndarray:
    """The action table's rows, checked against the model's trained action range and the frame count."""
    rows = actions_from_table(table, info.action_dim)
    check_actions_in_range(rows, info.prior_config.action_range, action_column_names(info.action_dim))
    if len(rows) != n_rows:
        raise ValueError(f"the action table has {len(rows)} rows but {n_rows} {what}")
    return rows


def continuation_context(info: ModelInfo, available: int) -> int:
    """How many of the last frames a continuation feeds back: whole latent slices up to one less than the
    window (the pipeline's video-prediction prefix), or, for a one-slice window, the conditioning frames."""
    context = continuation_frames(available, info.frames_per_latent, info.latent_shape[0],
                                  info.prior_config.n_cond_frames)
    if context == 0:
        raise ValueError(f"model {info.name} cannot continue a video: its window is one latent slice and it "
                         "takes no first frame")
    return context


@user_errors
def continue_generation(registry: ModelRegistry, store: OutputStore, session: WorldSession | None, sample,
                        actions, seed, randomize_seed: bool, n_samples, n_new_frames,
                        *sampling) -> Iterator[GenerationUpdate]:
    """Extend one sample of the last result by n_new_frames (driven by the action table's rows, for an
    action-conditional model): its last frames become the video-prediction prefix of a new window, and
    n_samples possible futures are drawn. The result (past + future) replaces the session."""
    if session is None:
        raise ValueError("nothing to continue yet: generate a video first")
    info = registry.info(session.model_name)
    index = whole_number(sample, "sample to continue", 1, len(session.frames)) - 1
    n = whole_number(n_samples, "number of samples", 1, MAX_SAMPLES)
    n_new = whole_number(n_new_frames, "number of frames to add", 1, info.max_frames)
    options = sampling_options(sampling)
    seed = pick_seed(seed, bool(randomize_seed))
    past = session.frames[index]
    context = continuation_context(info, len(past))
    action_rows = session_actions = None
    if info.action_dim:
        new_actions = _table_actions(info, actions, n_new, "frames are to be added: give one row per new frame")
        previous = session.actions if session.actions is not None else np.zeros((len(past), info.action_dim))
        action_rows = np.concatenate([previous[-context:], new_actions]).astype(np.float32)
        session_actions = np.concatenate([previous, new_actions]).astype(np.float32)
    yield from _stream(registry, store, info, n=n, frames=past[-context:], label=session.label,
                       actions=action_rows, options=options, seed=seed, n_frames=context + n_new,
                       keep_from=context, past=past[None], session_actions=session_actions, verb="Continuing")

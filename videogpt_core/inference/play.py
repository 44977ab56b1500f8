"""One player's world: an action-conditioned pipeline stepped one latent time slice at a time.

A `PlaySession` starts from frames (an image or a clip's first frames) and grows an episode without limit:
each `step(actions)` samples the next latent slice of the world with the given action row(s) and returns
its new frames. Steps sample into one window of the model, its KV cache kept between them (a step costs its
own slice's tokens and one decode); a full window slides to its last `context_slices` slices, kept as the
codes they were sampled as and conditioned on their first frame, as `VideoGPTPipeline`'s sliding window
continues a video, so the episode may be far longer than the model's window. `undo()` drops the last step,
`reset()` goes back to the start, `frames` / `actions` hold the whole episode (e.g. for an mp4). Steps,
undos and resets of one session are serialised by a lock, so a session may be shared between threads;
sessions on one pipeline are independent.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import torch

from videogpt_core.data.transforms import resize_center_crop
from videogpt_core.inference.pipeline import VideoGPTPipeline
from videogpt_core.inference.sampling import Speculation, WindowSampler
from videogpt_core.inference.sampling_options import SamplingOptions
from videogpt_core.inference.user_inputs import whole_number
from videogpt_core.models.conditions import Conditions


def default_context_slices(window_slices: int) -> int:
    """Latent slices a full window keeps when it slides, by default: three quarters of it (at least one; the
    window less one up to 4 slices). A window kept whole less one pays a prefill of the whole window at every step
    once full; sliding by a quarter pays it once every quarter window. The shipped vizdoom (16 one-frame slices),
    compiled, one thread, idle: 0.196 -> 0.128 s a step on average over 210 steps, steps 200-210 within 14% of
    steps 1-10, played against the simulator 22.24 dB vs 22.35 dB (BENCHMARKS.md). Keeping a single slice
    drifts: pusher rollouts 18.9 dB vs 21.3 dB over 32 frames."""
    return max(1, (3 * window_slices) // 4)


@dataclass
class PlayStep:
    frames: np.ndarray  # (k, H, W, 3) uint8: the step's new frames
    seconds: float  # time the pipeline took (sampling + decoding)
    episode_frames: int  # frames in the episode after the step


class PlaySession:
    def __init__(self, pipeline: VideoGPTPipeline, frames, *, options: SamplingOptions | None = None,
                 seed: int | None = None, context_slices: int | None = None, max_frames: int | None = None,
                 actions=None):
        """frames: uint8 image (H, W, 3) or clip (K, H, W, 3) of any size, resized as the pipeline does.
        A clip of at least one latent slice keeps its last whole slices (up to context_slices); a
        frame-conditional model may also start from its conditioning frame(s) alone.
        context_slices: latent slices of the past a full window keeps when it slides (default:
        default_context_slices; more see further back, fewer slide more often). max_frames: the most frames
        kept for `frames` (older ones are dropped; the world plays on); default: all. actions: the rows behind
        the start frames (e.g. a recorded episode's), one per given frame; default: zeros. options: how codes
        are sampled (without guidance: play gives no class, and its actions change step by step)."""
        cfg = pipeline.config
        if not cfg.action_dim:
            raise ValueError(f"{pipeline.source} is not action-conditional: there is nothing to steer; play "
                             "needs a model trained with per-frame actions")
        if cfg.n_classes:
            raise ValueError(f"{pipeline.source} is also class-conditional: play gives no class; use a model "
                             "conditioned on frames and actions only")
        t = cfg.latent_shape[0]
        if t < 2:
            raise ValueError(f"{pipeline.source} has a one-slice window: it cannot continue a video step by step")
        self.pipeline = pipeline
        self.fpl = cfg.frames_per_latent
        self.action_dim = cfg.action_dim
        self.context_slices = whole_number(default_context_slices(t) if context_slices is None else context_slices,
                                           "context_slices", 1, t - 1)
        if max_frames is not None:
            max_frames = whole_number(max_frames, "max_frames", (t + 1) * self.fpl)
        self.max_frames = max_frames
        self.options = SamplingOptions()
        self.set_options(options or SamplingOptions())
        self._start, self._start_actions = self._start_frames(frames, actions)
        self.seed = int(np.random.SeedSequence(seed).generate_state(1, np.uint64)[0] >> 1)  # None: a fresh one
        self._lock = threading.Lock()
        self._reset_locked()

    # ---- set-up -------------------------------------------------------------------------------------

    def _start_frames(self, frames, actions) -> tuple[np.ndarray, np.ndarray]:
        """The start as model-size uint8 frames (K, res, res, 3) and their action rows (K, action_dim)."""
        cfg = self.pipeline.config
        self.pipeline.prepare_frames(frames)  # refuses what the pipeline would refuse, with its message
        array = np.asarray(frames)
        array = resize_center_crop(array[None] if array.ndim == 3 else array, cfg.resolution)
        if actions is None:
            rows = np.zeros((len(array), self.action_dim), np.float32)
        else:
            rows = self.pipeline.prepare_actions(actions, len(array)).cpu().numpy()
        whole = min(len(array) // self.fpl, self.context_slices) * self.fpl
        if whole:
            return array[len(array) - whole:], rows[len(array) - whole:]
        if cfg.n_cond_frames and len(array) >= cfg.n_cond_frames:
            return array[: cfg.n_cond_frames], rows[: cfg.n_cond_frames]
        need = f"{cfg.n_cond_frames} frame(s)" if cfg.n_cond_frames else f"{self.fpl} frames (one latent slice)"
        raise ValueError(f"play starts from at least {need}; got {len(array)}")

    def set_options(self, options: SamplingOptions) -> None:
        """The sampling settings of the following steps; refused before any step uses them."""
        if options.guided:
            raise ValueError("play samples without guidance (cfg_scale): its actions change at every step")
        options.check_for(self.pipeline.prior)
        self.options = options

    def set_sampling(self, **changes) -> None:
        """Change some sampling settings of the following steps, e.g. set_sampling(temperature=0.8)."""
        self.set_options(self.options.replace(**changes))

    # ---- the episode --------------------------------------------------------------------------------

    @property
    def frames(self) -> np.ndarray:
        """(T, H, W, 3) uint8: the episode so far (its first frames are the start)."""
        with self._lock:
            return np.stack(self._frames)

    @property
    def actions(self) -> np.ndarray:
        """(T, action_dim) float32: the action row behind each frame (the start frames' as given)."""
        with self._lock:
            return np.stack(self._actions)

    @property
    def n_steps(self) -> int:
        return len(self._steps)

    @property
    def last_frame(self) -> np.ndarray:
        return self._frames[-1]

    @property
    def next_step_frames(self) -> int:
        """How many frames the next step adds: up to the end of the current latent slice."""
        return self.fpl - self._length % self.fpl

    def _reset_locked(self) -> None:
        self._frames: list[np.ndarray] = list(self._start)
        self._actions: list[np.ndarray] = list(self._start_actions)
        self._length = len(self._start)  # frames ever played, also those max_frames dropped
        self._steps: list[int] = []  # frames added by each step, for undo
        # Per step: the window it sampled in and that window's slices before it (undo rewinds the window).
        self._step_windows: list[tuple[WindowSampler, int]] = []
        self._window: WindowSampler | None = None  # the window being sampled, its KV cache kept between steps
        self._window_first = 0  # the episode frame (counted as _length) where the window begins

    def reset(self) -> None:
        """Back to the start frames."""
        with self._lock:
            self._reset_locked()

    def undo(self) -> bool:
        """Drop the last step's frames; False when there is no step to undo (or it was dropped by max_frames)."""
        with self._lock:
            if not self._steps:
                return False
            count = self._steps.pop()
            window, slices_before = self._step_windows.pop()
            del self._frames[-count:]
            del self._actions[-count:]
            self._length -= count
            if window is self._window and window.slices_done == slices_before + 1:
                window.rewind(1)  # the same step again samples exactly as before
            else:
                self._window = None  # the next step starts a window from the frames
            return True

    def _action_rows(self, actions, count: int) -> np.ndarray:
        array = np.asarray(actions, dtype=np.float32)
        if array.ndim == 1:
            array = np.broadcast_to(array, (count, *array.shape))
        if array.shape != (count, self.action_dim):
            raise ValueError(f"step takes one action row of {self.action_dim} values (held for the whole step) or "
                             f"{count} rows, one per new frame; got shape {array.shape}")
        return array

    def step(self, actions) -> PlayStep:
        """Sample the next latent slice with `actions` ((action_dim,) held for the step, or one row per new
        frame) and append its frames. Raises ValueError for bad actions (the episode stays as it was)."""
        with self._lock:
            count = self.fpl - self._length % self.fpl
            rows = np.array(self._action_rows(actions, count))  # a copy: the episode keeps its own
            pipeline = self.pipeline
            checked = pipeline.prepare_actions(rows, count)  # the model's action range, NaN: refused here
            # The seed follows from the session's seed and the frame the step starts at, so undoing a step
            # and taking it again with the same actions gives the same frames (other actions: what they change).
            seed = int(np.random.SeedSequence([self.seed, self._length]).generate_state(1)[0] >> 1)
            generator = torch.Generator(device=pipeline.device).manual_seed(seed)
            started = time.perf_counter()
            with torch.no_grad(), pipeline.autocast():
                window = self._window_for_step()
                slices_before = window.slices_done
                # The slice's rows: those of its frames already shown (a start shorter than a slice), then the step's.
                shown = [torch.from_numpy(row).to(pipeline.device) for row in self._actions[len(self._actions)
                                                                                        - (self.fpl - count):]]
                slice_rows = torch.cat([torch.stack(shown), checked]) if shown else checked
                window.next_slice(slice_rows[None], generator)
                # Decoded with the window's earlier slices, the context the VQ-VAE decodes in; a per-frame
                # codec decodes each frame alone, so only the new slice (a step's cost then holds still).
                grid = window.grid()
                new = pipeline.decode(grid[:, -1:] if pipeline.vqvae.config.per_frame else grid)[0, -count:]
            seconds = time.perf_counter() - started
            self._frames.extend(new)
            self._actions.extend(rows)
            self._length += count
            self._steps.append(count)
            self._step_windows.append((window, slices_before))
            if self.max_frames is not None and len(self._frames) > self.max_frames:
                drop = len(self._frames) - self.max_frames
                del self._frames[:drop]
                del self._actions[:drop]
                # Steps whose frames are gone cannot be undone.
                while self._steps and sum(self._steps) > len(self._frames) - self.fpl:
                    self._steps.pop(0)
                    self._step_windows.pop(0)
            return PlayStep(new.copy(), seconds, len(self._frames))

    def _frame_tensor(self, first: int, count: int) -> torch.Tensor:
        """Episode frames first .. first+count-1 (counted as _length) as a model video (1, 3, count, H, W)."""
        index = first - (self._length - len(self._frames))
        return self.pipeline.as_model_video(np.stack(self._frames[index:index + count])[None])

    def _window_for_step(self) -> WindowSampler:
        """The window the next slice is sampled in: the current one while it has room; a full one slides to
        its last context_slices slices (their codes and cache inputs as sampled, nothing re-encoded); without
        one (start, undo past a window), a window from the last frames, encoded."""
        pipeline, cfg = self.pipeline, self.pipeline.config
        options = self.options
        window = self._window
        if window is not None and not window.full:
            window.set_options(options)  # settings changed since the window began take effect
            return window
        n_cond = cfg.n_cond_frames
        if window is not None:
            first = self._window_first + (window.slices_done - self.context_slices) * self.fpl
            self._window = window.slid(self.context_slices, self._frame_tensor(first, n_cond) if n_cond else None)
            self._window.set_options(options)
            self._window_first = first
            return self._window
        partial = self._length % self.fpl  # a start shorter than a slice: its conditioning frames
        context = partial or min(len(self._frames) // self.fpl, self.context_slices) * self.fpl
        first = self._length - context
        video = self._frame_tensor(first, context)
        prefix = None if partial else pipeline.encode_prefix(video, context // self.fpl)
        actions = None if partial else torch.from_numpy(np.stack(self._actions[-context:]))[None]
        conditions = Conditions(frames=video[:, :, :n_cond] if n_cond else None,
                                actions=None if actions is None else actions.to(pipeline.device),
                                prefix=None if prefix is None else prefix.flatten(1))
        # A CUDA-graph step is run eagerly here: a window held between a player's steps would keep a state at
        # the graph's fixed addresses busy for as long as the player plays.
        step = None if pipeline.decode_step.kept_states else pipeline.decode_step
        # A pipeline made with draft_tokens speculates here as in generate (exact: the same distribution).
        speculation = Speculation(pipeline.draft_tokens, pipeline.draft) if (pipeline.draft_tokens or 0) > 1 else None
        self._window = WindowSampler(pipeline.prior, 1, conditions, options=options, quantize=pipeline.quantize,
                                     step=step, speculation=speculation)
        self._window_first = first
        return self._window

"""One player's world: an action-conditioned pipeline stepped one latent time slice at a time.

A `PlaySession` starts from frames (an image or a clip's first frames) and grows an episode without limit:
each `step(actions)` samples the next latent slice of the world with the given action row(s) and returns
its new frames. The model sees the last `context_slices` slices as a video-prediction prefix (re-encoded,
conditioned on their first frame, as `VideoGPTPipeline`'s sliding window continues a video), so the episode
may be far longer than the model's window. `undo()` drops the last step, `reset()` goes back to the start,
`frames` / `actions` hold the whole episode (e.g. for an mp4). Steps, undos and resets of one session are
serialised by a lock, so a session may be shared between threads; sessions on one pipeline are independent.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from videogpt_core.data.transforms import resize_center_crop
from videogpt_core.pipeline import VideoGPTPipeline, whole_number
from videogpt_core.sampling import SamplingOptions


@dataclass
class PlayStep:
    frames: np.ndarray  # (k, H, W, 3) uint8: the step's new frames
    seconds: float  # time the pipeline took (sampling + decoding)
    episode_frames: int  # frames in the episode after the step


class PlaySession:
    def __init__(self, pipeline: VideoGPTPipeline, frames, *, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, seed: int | None = None, context_slices: int | None = None,
                 max_frames: int | None = None, actions=None):
        """frames: uint8 image (H, W, 3) or clip (K, H, W, 3) of any size, resized as the pipeline does.
        A clip of at least one latent slice keeps its last whole slices (up to context_slices); a
        frame-conditional model may also start from its conditioning frame(s) alone.
        context_slices: latent slices of the past the model sees at each step (default: the window less one,
        as the pipeline's sliding window; fewer is faster). max_frames: the most frames kept for `frames`
        (older ones are dropped; the world plays on); default: all. actions: the rows behind the start
        frames (e.g. a recorded episode's), one per given frame; default: zeros."""
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
        self.context_slices = whole_number(t - 1 if context_slices is None else context_slices,
                                           "context_slices", 1, t - 1)
        if max_frames is not None:
            max_frames = whole_number(max_frames, "max_frames", (t + 1) * self.fpl)
        self.max_frames = max_frames
        self.options = dict(temperature=1.0, top_k=None, top_p=None)
        self.set_sampling(temperature=temperature, top_k=top_k, top_p=top_p)
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

    def set_sampling(self, temperature: float | None = None, top_k: int | None = None,
                     top_p: float | None = None) -> None:
        """Change the sampling settings of the following steps (None keeps a setting)."""
        options = dict(self.options)
        for key, value in (("temperature", temperature), ("top_k", top_k), ("top_p", top_p)):
            if value is not None:
                options[key] = value
        checked = SamplingOptions(**options)
        checked.check(self.pipeline.prior)  # a bad value is refused before any step uses it
        self.options = dict(temperature=checked.temperature, top_k=checked.top_k, top_p=checked.top_p)

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
            del self._frames[-count:]
            del self._actions[-count:]
            self._length -= count
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
            rows = self._action_rows(actions, count)
            partial = self._length % self.fpl  # only at a start shorter than a slice (the conditioning frames)
            if partial:
                context = partial
            else:
                context = min(len(self._frames) // self.fpl, self.context_slices) * self.fpl
            past_frames = np.stack(self._frames[len(self._frames) - context:])
            past_actions = np.stack(self._actions[len(self._actions) - context:])
            # The seed follows from the session's seed and the frame the step starts at, so undoing a step
            # and taking it again with the same actions gives the same frames (other actions: what they change).
            seed = int(np.random.SeedSequence([self.seed, self._length]).generate_state(1)[0] >> 1)
            started = time.perf_counter()
            # pipeline.generate checks the rows against the model's action range before sampling anything.
            result = self.pipeline.generate(frames=past_frames, actions=np.concatenate([past_actions, rows]),
                                            n_frames=context + count, seed=seed, **self.options)
            seconds = time.perf_counter() - started
            new = result.frames[0, context:]
            self._frames.extend(new)
            self._actions.extend(rows.copy())
            self._length += count
            self._steps.append(count)
            if self.max_frames is not None and len(self._frames) > self.max_frames:
                drop = len(self._frames) - self.max_frames
                del self._frames[:drop]
                del self._actions[:drop]
                # Steps whose frames are gone cannot be undone.
                while self._steps and sum(self._steps) > len(self._frames) - self.fpl:
                    self._steps.pop(0)
            return PlayStep(new.copy(), seconds, len(self._frames))

"""The window arithmetic of long generations, as pure functions of the model's shape.

The prior sees a window of t latent slices (each `fpl` frames). A video longer than one window is sampled
window by window: each later window keeps the last t - 1 slices of the video as its prefix (a video
prediction of one new slice), conditioned on the first frame(s) of that prefix. The pipeline, the demo's
Continue and the tests all take their numbers from here.
"""
from __future__ import annotations

import math


def slices_for(n_frames: int, fpl: int) -> int:
    """Latent slices that cover n_frames frames."""
    return math.ceil(n_frames / fpl)


def given_slices(given_frames: int, fpl: int, t: int, total_slices: int) -> int:
    """How many whole slices of given frames become the first window's prefix: at most t - 1 (a window must
    sample something) and no more than the video needs."""
    return min(given_frames // fpl, t - 1, total_slices)


def padded_action_frames(total_slices: int, t: int, fpl: int) -> int:
    """Action rows a generation needs: whole windows (rows past the video only drive frames that are cut off)."""
    return max(total_slices, t) * fpl


def next_window_start(slices_done: int, t: int) -> int:
    """The slice where the window after `slices_done` slices begins: it keeps the last t - 1 (a one-slice window
    keeps nothing)."""
    return slices_done - (t - 1)


def continuation_frames(available: int, fpl: int, t: int, n_cond_frames: int) -> int:
    """How many of the last `available` frames a continuation feeds back: whole slices up to one less than the
    window, or (a one-slice window) the conditioning frames; 0 when the model cannot continue a video."""
    context = min(available // fpl, t - 1) * fpl
    if context == 0 and n_cond_frames and available >= n_cond_frames:
        context = n_cond_frames
    return context

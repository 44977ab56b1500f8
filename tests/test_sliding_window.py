"""The window arithmetic of long generations (pure functions; the pipeline tests check what it produces)."""
from videogpt_core.models.sliding_window import (continuation_frames, given_slices, next_window_start,
                                                 padded_action_frames, slices_for)


def test_windows_of_a_long_video():
    fpl, t = 4, 4
    assert slices_for(16, fpl) == 4 and slices_for(17, fpl) == 5 and slices_for(1, fpl) == 1
    assert padded_action_frames(slices_for(6, fpl), t, fpl) == 16  # a short video still fills a window
    assert padded_action_frames(slices_for(24, fpl), t, fpl) == 24
    assert next_window_start(4, t) == 1 and next_window_start(5, t) == 2  # keeps the last t - 1 slices
    assert next_window_start(3, 1) == 3  # a one-slice window keeps nothing


def test_given_frames_and_continuations():
    fpl, t = 4, 4
    assert given_slices(1, fpl, t, 4) == 0  # a first frame alone is a condition, not a prefix
    assert given_slices(9, fpl, t, 4) == 2 and given_slices(40, fpl, t, 4) == t - 1  # a window samples something
    assert given_slices(40, fpl, t, 2) == 2  # no more than the video needs
    assert continuation_frames(20, fpl, t, 1) == 12 and continuation_frames(6, fpl, t, 0) == 4
    assert continuation_frames(3, fpl, t, 1) == 1  # shorter than a slice: the conditioning frame
    assert continuation_frames(3, fpl, t, 0) == 0  # nothing a video-prediction model can continue from
    assert continuation_frames(10, fpl, 1, 2) == 2  # a one-slice window: its conditioning frames

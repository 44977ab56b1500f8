"""World-model score of the fetchpush world: where are the gripper's hand (painted magenta) and the block
(painted red) in a frame? Found by hue, so shading on the lit and shadowed faces does not matter; compared
with the positions the simulator projected into the true frames."""
from __future__ import annotations

import cv2
import numpy as np

from videogpt_core.evaluation.rollout_scores import mean_position_error, video_psnr

# OpenCV hue runs 0..179. Red wraps around 0; magenta sits near 150. Nothing else in the scene (white
# table, green floor, blue and grey robot) is both this saturated and of these hues.
HUE_RANGES = {"gripper": ((138, 165),), "block": ((0, 8), (172, 179))}
MIN_SATURATION = 110
# Brightness floors: the hand's faces are all seen (lit or not); of the block only the lit top face counts,
# which is where its true position is (its shadowed sides would pull the centroid towards the camera).
MIN_VALUE = {"gripper": 50, "block": 120}
MIN_PIXELS = 2  # fewer matching pixels than this count as "not found"
THINGS = ("gripper", "block")


def locate_fetchpush(frames: np.ndarray) -> np.ndarray:
    """Centroids (x, y), pixel j centred at j + 0.5, of the gripper's and the block's pixels.
    frames (..., H, W, 3) uint8 RGB -> (..., 2, 2) float32 (gripper, block), NaN where not found."""
    frames = np.asarray(frames)
    if frames.ndim < 3 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (..., H, W, 3) RGB, got {frames.dtype} {frames.shape}")
    lead, (height, width) = frames.shape[:-3], frames.shape[-3:-1]
    flat = frames.reshape(-1, height, width, 3)
    hsv = np.stack([cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2HSV) for frame in flat])
    hue, saturated, value = hsv[..., 0], hsv[..., 1] >= MIN_SATURATION, hsv[..., 2]
    xs, ys = np.arange(width) + 0.5, np.arange(height) + 0.5
    found = np.full((len(flat), len(THINGS), 2), np.nan, dtype=np.float32)
    for index, thing in enumerate(THINGS):
        in_hue = np.any([(hue >= low) & (hue <= high) for low, high in HUE_RANGES[thing]], axis=0)
        mask = saturated & (value >= MIN_VALUE[thing]) & in_hue
        counts = mask.sum(axis=(1, 2))
        ok = counts >= MIN_PIXELS
        found[ok, index, 0] = (mask[ok].sum(axis=1) @ xs) / counts[ok]
        found[ok, index, 1] = (mask[ok].sum(axis=2) @ ys) / counts[ok]
    return found.reshape(*lead, len(THINGS), 2)


def fetchpush_rollout_scores(sampled_frames: np.ndarray, true_frames: np.ndarray,
                             true_positions: np.ndarray) -> dict[str, float]:
    """Score sampled fetchpush videos against the simulator's rollout from the same first frame and actions.

    sampled_frames, true_frames: (N, T, 64, 64, 3) uint8; true_positions: (N, T, 2, 2) pixel (x, y) of the
    gripper and the block as the simulator projected them. Returns gripper_error_px / block_error_px (mean
    distance over frames where the thing is found in the sample), gripper_found / block_found (fraction of
    frames where it is) and psnr (dB, mean over videos)."""
    sampled_frames, true_frames = np.asarray(sampled_frames), np.asarray(true_frames)
    true_positions = np.asarray(true_positions, dtype=np.float64)
    if sampled_frames.shape != true_frames.shape or sampled_frames.ndim != 5:
        raise ValueError(f"sampled and true frames must both be (N, T, H, W, 3); got {sampled_frames.shape} "
                         f"and {true_frames.shape}")
    if true_positions.shape != (*true_frames.shape[:2], len(THINGS), 2):
        raise ValueError(f"true_positions must be (N, T, {len(THINGS)}, 2) (gripper, block); got "
                         f"{true_positions.shape}")
    found = locate_fetchpush(sampled_frames).astype(np.float64)
    scores: dict[str, float] = {}
    for index, thing in enumerate(THINGS):
        error, fraction = mean_position_error(found[:, :, index], true_positions[:, :, index])
        scores[f"{thing}_error_px"], scores[f"{thing}_found"] = error, fraction
    scores["psnr"] = video_psnr(sampled_frames, true_frames)
    return scores

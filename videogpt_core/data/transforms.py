"""Frame preprocessing shared by all data sets: resize + center crop, uint8 <-> model tensors, clip windows.

Model videos are float (3, T, H, W) in [-0.5, 0.5] (= uint8 / 255 - 0.5); files are uint8 (T, H, W, 3).
"""
from __future__ import annotations

import numpy as np
import torch


def resize_center_crop(frames: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 (T, H, W, 3) frames so the short side is `size`, then crop the centre square.

    Downscaling uses area averaging (no aliasing), upscaling bilinear interpolation.
    """
    import cv2

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3); got shape {frames.shape}")
    if int(size) != size or size < 1:
        raise ValueError(f"size must be a positive integer, got {size}")
    size = int(size)
    height, width = frames.shape[1:3]
    if (height, width) == (size, size):
        return frames
    scale = size / min(height, width)
    # max(size, ...) guards against rounding the short side to size - 1.
    new_height, new_width = max(size, round(height * scale)), max(size, round(width * scale))
    if (new_height, new_width) != (height, width):
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        frames = np.stack(
            [cv2.resize(frame, (new_width, new_height), interpolation=interpolation) for frame in frames]
        )
    top, left = (new_height - size) // 2, (new_width - size) // 2
    return np.ascontiguousarray(frames[:, top : top + size, left : left + size])


def to_model_video(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (T, H, W, 3) frames -> float32 tensor (3, T, H, W) in [-0.5, 0.5]."""
    frames = torch.as_tensor(np.asarray(frames) if not isinstance(frames, torch.Tensor) else frames)
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames (T, H, W, 3); got {frames.dtype} {tuple(frames.shape)}")
    return frames.permute(3, 0, 1, 2).float().div_(255.0).sub_(0.5)


def from_model_video(video: torch.Tensor) -> np.ndarray:
    """Model video (B, 3, T, H, W) or (3, T, H, W) in [-0.5, 0.5] -> uint8 (B, T, H, W, 3) / (T, H, W, 3).

    Values outside [-0.5, 0.5] (a decoder's overshoot) are clamped.
    """
    if video.ndim not in (4, 5) or video.shape[-4] != 3:
        raise ValueError(f"expected a video (B, 3, T, H, W) or (3, T, H, W); got {tuple(video.shape)}")
    frames = ((video.detach().float() + 0.5).clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    frames = frames.movedim(-4, -1)  # channels last: (..., T, H, W, 3)
    return frames.cpu().numpy()


def clip_span(length: int, stride: int = 1) -> int:
    """How many source frames a clip of `length` frames taken every `stride` frames covers."""
    if length < 1 or stride < 1:
        raise ValueError(f"clip length and frame stride must be >= 1; got {length} and {stride}")
    return (length - 1) * stride + 1


def clip_window(
    n_frames: int, length: int, stride: int = 1, rng: np.random.Generator | torch.Generator | None = None
) -> int:
    """Start index of a clip of `length` frames every `stride` frames inside a video of n_frames.

    With an rng (numpy or torch) the start is uniform over all windows that fit; without one it
    is 0 (the first window).
    """
    span = clip_span(length, stride)
    if n_frames < span:
        raise ValueError(
            f"a video of {n_frames} frames is too short for a clip of {length} frames with frame "
            f"stride {stride} (needs {span}); use a shorter sequence length or a smaller stride"
        )
    n_windows = n_frames - span + 1
    if rng is None:
        return 0
    if isinstance(rng, torch.Generator):
        return int(torch.randint(0, n_windows, (), generator=rng).item())
    return int(rng.integers(0, n_windows))


class ClipWindows:
    """Chooses clip windows: random on every draw for training, fixed per video for evaluation.

    Training draws use torch's default generator: torch.manual_seed reproduces them, and
    DataLoader seeds it differently in every worker and epoch. Evaluation takes the first
    window, or, with eval_seed, a window chosen once per video from (eval_seed, video index).
    """

    def __init__(self, sequence_length: int, frame_stride: int = 1, train: bool = True, eval_seed: int | None = None):
        self.sequence_length = int(sequence_length)
        self.frame_stride = int(frame_stride)
        self.span = clip_span(self.sequence_length, self.frame_stride)
        self.train = bool(train)
        self.eval_seed = eval_seed

    def start(self, n_frames: int, video_index: int) -> int:
        if self.train:
            return clip_window(n_frames, self.sequence_length, self.frame_stride, torch.default_generator)
        if self.eval_seed is None:
            return clip_window(n_frames, self.sequence_length, self.frame_stride, None)
        rng = np.random.default_rng([int(self.eval_seed), int(video_index)])
        return clip_window(n_frames, self.sequence_length, self.frame_stride, rng)

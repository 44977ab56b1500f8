"""World-model scores on the built-in worlds: where things are in sampled pusher rollouts versus the
simulator's true rollout, and a small digit classifier that checks class-conditional samples."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from .data.worlds.pusher import GRIPPER_BODY_COLOUR

COLOUR_TOLERANCE = 60.0  # RGB distance: well inside the gap between the palette and the table/gripper
GRIPPER_TOLERANCE = 45.0
MIN_PIXELS = 3  # fewer matching pixels than this count as "not found"


def _pixel_centres(size: int) -> np.ndarray:
    return np.arange(size, dtype=np.float64) + 0.5


def locate_by_colour(frames: np.ndarray, colours: np.ndarray, tolerance: float = COLOUR_TOLERANCE) -> np.ndarray:
    """Centroid (x, y), in pixels with pixel j centred at j + 0.5, of the pixels within `tolerance` (RGB
    distance) of each colour. frames (..., H, W, 3) uint8, colours (n, 3) -> (..., n, 2) float32, NaN where
    fewer than MIN_PIXELS match."""
    frames = np.asarray(frames)
    colours = np.asarray(colours, dtype=np.float32).reshape(-1, 3)
    if frames.ndim < 3 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (..., H, W, 3) RGB, got shape {frames.shape}")
    height, width = frames.shape[-3:-1]
    pixels = frames.astype(np.float32)[..., None, :]  # (..., H, W, 1, 3)
    distance_sq = np.sum((pixels - colours) ** 2, axis=-1)  # (..., H, W, n)
    mask = (distance_sq <= tolerance**2).astype(np.float64)
    counts = mask.sum(axis=(-3, -2))  # (..., n)
    xs = np.einsum("...hwn,w->...n", mask, _pixel_centres(width))
    ys = np.einsum("...hwn,h->...n", mask, _pixel_centres(height))
    with np.errstate(invalid="ignore", divide="ignore"):
        centres = np.stack([xs / counts, ys / counts], axis=-1)
    centres[counts < MIN_PIXELS] = np.nan
    return centres.astype(np.float32)


def locate_gripper(frames: np.ndarray) -> np.ndarray:
    """The pusher gripper's centre (its dark body): frames (..., H, W, 3) uint8 -> (..., 2), NaN if absent."""
    return locate_by_colour(frames, np.array([GRIPPER_BODY_COLOUR]), GRIPPER_TOLERANCE)[..., 0, :]


def _mean_error(found: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(mean distance over pairs where both exist, fraction of true things that were found)."""
    present = ~np.isnan(truth).any(axis=-1)
    both = present & ~np.isnan(found).any(axis=-1)
    if not present.any():
        return float("nan"), float("nan")
    error = float(np.linalg.norm(found[both] - truth[both], axis=-1).mean()) if both.any() else float("nan")
    return error, float(both.sum() / present.sum())


def video_psnr(sampled_frames: np.ndarray, true_frames: np.ndarray) -> float:
    """Mean over videos of the PSNR (dB) of each whole video; inf when identical. (N, T, H, W, 3) uint8."""
    difference = sampled_frames.astype(np.float64) - true_frames.astype(np.float64)
    mse = np.mean(difference**2, axis=tuple(range(1, difference.ndim)))  # (N,)
    with np.errstate(divide="ignore"):
        return float(np.mean(10.0 * np.log10(255.0**2 / mse)))


def pusher_rollout_scores(sampled_frames: np.ndarray, true_frames: np.ndarray, true_positions: np.ndarray,
                          colours: np.ndarray) -> dict[str, float]:
    """Score sampled pusher videos against the simulator's rollout from the same first frame and actions.

    sampled_frames, true_frames: (N, T, 64, 64, 3) uint8; true_positions: (N, T, 1 + k, 2) gripper first,
    NaN for absent objects (the HDF5 padding); colours: (N, k, 3) uint8 object colours.
    Returns gripper_error_px / object_error_px (mean Euclidean error over all frames where the thing is
    found), gripper_found / object_found (fraction of true things located in the samples; a sample that
    loses an object scores low here rather than in the error) and psnr (dB, mean over videos).
    """
    sampled_frames, true_frames = np.asarray(sampled_frames), np.asarray(true_frames)
    true_positions = np.asarray(true_positions, dtype=np.float64)
    colours = np.asarray(colours)
    if sampled_frames.shape != true_frames.shape or sampled_frames.ndim != 5:
        raise ValueError(
            f"sampled and true frames must both be (N, T, H, W, 3); got {sampled_frames.shape} and {true_frames.shape}"
        )
    n_videos, n_frames = true_frames.shape[:2]
    n_objects = true_positions.shape[2] - 1
    if true_positions.shape[:2] != (n_videos, n_frames) or colours.shape[:1] != (n_videos,) \
            or colours.shape[1] < n_objects:
        raise ValueError(
            f"true_positions must be (N={n_videos}, T={n_frames}, 1 + k, 2) and colours (N, >= k, 3); "
            f"got {true_positions.shape} and {colours.shape}"
        )
    gripper_error, gripper_found = _mean_error(locate_gripper(sampled_frames), true_positions[:, :, 0])
    found_objects = np.full((n_videos, n_frames, n_objects, 2), np.nan)
    for video in range(n_videos):
        found_objects[video] = locate_by_colour(sampled_frames[video], colours[video, :n_objects])
    object_error, object_found = _mean_error(found_objects, true_positions[:, :, 1:])
    return {
        "gripper_error_px": gripper_error,
        "object_error_px": object_error,
        "gripper_found": gripper_found,
        "object_found": object_found,
        "psnr": video_psnr(sampled_frames, true_frames),
    }


class DigitClassifier(nn.Module):
    """Per-frame conv net (about 60k parameters); a clip's class is the average of its frames' log-probs.
    Global max pooling makes it indifferent to where the digit is."""

    def __init__(self, channels: tuple[int, ...] = (16, 32, 64), n_classes: int = 10):
        super().__init__()
        self.config = {"kind": "digit_classifier", "channels": list(channels), "n_classes": n_classes}
        layers: list[nn.Module] = [nn.Conv2d(1, channels[0], 5, stride=2, padding=2), nn.ReLU()]  # 64 -> 32
        for in_channels, out_channels in zip(channels[:-1], channels[1:]):
            layers += [nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1), nn.ReLU()]  # halves
        layers += [nn.Conv2d(channels[-1], channels[-1], 3, padding=1), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels[-1], n_classes)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (B, 1, H, W) grey in [-0.5, 0.5] -> logits (B, n_classes)."""
        return self.head(self.features(frames).amax(dim=(2, 3)))


def _grey(frames_uint8: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 -> (M, 1, H, W) float in [-0.5, 0.5]."""
    grey = torch.from_numpy(np.ascontiguousarray(frames_uint8)).float().mean(dim=-1) / 255.0 - 0.5
    return grey.reshape(-1, 1, *grey.shape[-2:])


def _check_clips(clips: np.ndarray) -> np.ndarray:
    clips = np.asarray(clips)
    if clips.ndim == 4:
        clips = clips[None]
    if clips.ndim != 5 or clips.shape[-1] != 3 or clips.dtype != np.uint8:
        raise ValueError(f"clips must be uint8 (N, T, H, W, 3) or (T, H, W, 3); got {clips.dtype} {clips.shape}")
    return clips


def train_digit_classifier(train_clips: np.ndarray, labels: np.ndarray, steps: int = 400, seed: int = 0,
                           batch_size: int = 64, learning_rate: float = 5e-3) -> DigitClassifier:
    """Train on random frames of uint8 clips (N, T, 64, 64, 3) with labels (N,); returns the model in eval mode."""
    clips = _check_clips(train_clips)
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    if len(labels) != len(clips):
        raise ValueError(f"got {len(clips)} clips but {len(labels)} labels")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # the weight initialisation
    model = DigitClassifier()
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=learning_rate, total_steps=steps)
    n_clips, n_frames = clips.shape[:2]
    model.train()
    for _ in range(steps):
        clip_index = torch.randint(n_clips, (batch_size,), generator=generator)
        frame_index = torch.randint(n_frames, (batch_size,), generator=generator)
        frames = _grey(clips[clip_index.numpy(), frame_index.numpy()])
        loss = F.cross_entropy(model(frames), labels[clip_index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return model.eval()


@torch.no_grad()
def classify_clips(model: DigitClassifier, frames_uint8: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Predicted class of each clip: uint8 (N, T, H, W, 3) (or one clip (T, H, W, 3)) -> int64 (N,)."""
    clips = _check_clips(frames_uint8)
    n_clips, n_frames = clips.shape[:2]
    flat = clips.reshape(-1, *clips.shape[2:])
    log_probs = torch.cat([F.log_softmax(model(_grey(flat[i: i + batch_size])), dim=-1)
                           for i in range(0, len(flat), batch_size)])
    return log_probs.reshape(n_clips, n_frames, -1).mean(dim=1).argmax(dim=-1).numpy().astype(np.int64)


def digit_accuracy(model: DigitClassifier, clips: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of clips whose predicted class equals the label (e.g. the class a sample was conditioned on)."""
    return float(np.mean(classify_clips(model, clips) == np.asarray(labels)))


def save_digit_classifier(model: DigitClassifier, directory: str | os.PathLike) -> Path:
    """Write directory/config.json and directory/model.safetensors."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(model.config, indent=2))
    save_file({name: tensor.contiguous() for name, tensor in model.state_dict().items()},
              str(directory / "model.safetensors"))
    return directory


def load_digit_classifier(directory: str | os.PathLike) -> DigitClassifier:
    """Load a classifier written by save_digit_classifier (in eval mode)."""
    directory = Path(directory)
    config_path, weights_path = directory / "config.json", directory / "model.safetensors"
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found; save a classifier there with save_digit_classifier")
    config = json.loads(config_path.read_text())
    if config.get("kind") != "digit_classifier":
        raise ValueError(f"{config_path} describes a {config.get('kind')!r}, not a digit_classifier")
    model = DigitClassifier(tuple(config["channels"]), config["n_classes"])
    model.load_state_dict(load_file(str(weights_path)))
    return model.eval()

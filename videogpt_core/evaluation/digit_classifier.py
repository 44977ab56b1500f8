"""A small digit classifier, trained on real frames of the digits world, that checks which class a
class-conditional sample shows; saved and loaded as config.json + model.safetensors."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn


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

"""Everything the prior conditions on, as one frozen value: the first frames (cross-attention), the class, the
per-frame actions and a vector per clip (conditional LayerNorm), and the prefix codes (the given frames' codes,
written into the KV cache before sampling and never sampled).

`Conditions` are checked against a prior's config in one place (`check`), built from a data batch here and
from a user's inputs by the pipeline (which also checks the actions' trained range); the window, padding and
guidance doubling of a generation are its methods. What a new prior conditioned on a class, actions or a vector
per clip takes from its training data (`prior_config_from_data`) is here too, so a kind of condition lives in
this file, the config field that sizes it and the prior's embedding of it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from videogpt_core.models.action_range import action_range_of
from videogpt_core.models.sliding_window import padded_action_frames

# The item key of each field in a data batch (data sets name a clip's class "label").
BATCH_KEYS = {"frames": "frames", "labels": "label", "actions": "actions", "context": "context"}


@dataclass(frozen=True)
class Conditions:
    frames: torch.Tensor | None = None  # (B, 3, K, res, res) in [-0.5, 0.5]: at least the prior's K first frames
    labels: torch.Tensor | None = None  # (B,) int64 class indices
    actions: torch.Tensor | None = None  # (B, frames, action_dim) float32: one row per frame
    prefix: torch.Tensor | None = None  # (B, n) int64: the window's first n codes in raster order, given
    context: torch.Tensor | None = None  # (B, context_dim) float: one vector per clip (e.g. a text embedding)

    @classmethod
    def from_batch(cls, config, batch: dict, device: torch.device | str | None = None) -> "Conditions":
        """What this prior conditions on, from a collated data batch (BATCH_KEYS; first frames may come from
        "video"); the batch's other keys are left out."""
        parts = {name: batch.get(key) for name, key in BATCH_KEYS.items() if conditioned_on(config, name)}
        if config.n_cond_frames and parts["frames"] is None and "video" in batch:
            parts["frames"] = batch["video"][:, :, : config.n_cond_frames]
        return cls(**{k: v if v is None or device is None else v.to(device) for k, v in parts.items()})

    @classmethod
    def from_inputs(cls, device: torch.device | str | None = None, **tensors) -> "Conditions":
        """Conditions from keyword tensors or lists (labels=..., actions=...) on `device`; a clear error for
        other names."""
        known = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(tensors) - set(known))
        if unknown:
            raise TypeError(f"unknown conditions {unknown}; a prior conditions on {known}")
        as_tensor = {name: None if value is None else torch.as_tensor(value, device=device)
                     for name, value in tensors.items()}
        return cls(**as_tensor)

    @classmethod
    def zeros(cls, config, batch: int, device: torch.device | str) -> "Conditions":
        """Placeholder conditions of the right shapes (e.g. to warm up a compiled step)."""
        res, k = config.resolution, config.n_cond_frames
        return cls(
            frames=torch.zeros(batch, 3, k, res, res, device=device) if k else None,
            labels=torch.zeros(batch, dtype=torch.long, device=device) if config.n_classes else None,
            actions=torch.zeros(batch, config.sequence_length, config.action_dim, device=device)
            if config.action_dim else None,
            context=torch.zeros(batch, config.context_dim, device=device) if config.context_dim else None)

    # ---- checks -------------------------------------------------------------------------------------

    def check(self, config, batch: int) -> "Conditions":
        """These conditions, or a ValueError saying what a prior of `config` needs instead (one window: the
        actions hold sequence_length rows)."""
        _check_frames(self.frames, config, batch)
        _check_labels(self.labels, config, batch)
        _check_actions(self.actions, config, batch)
        _check_context(self.context, config, batch)
        if self.prefix is not None:
            if self.prefix.dim() != 2 or self.prefix.shape[0] != batch or self.prefix.is_floating_point() \
                    or self.prefix.shape[1] >= config.seq_len:
                raise ValueError(f"prefix must be (batch={batch}, n < {config.seq_len}) codes, got "
                                 f"{tuple(self.prefix.shape)}")
        return self

    # ---- a generation's conditions ------------------------------------------------------------------

    def replace(self, **changes) -> "Conditions":
        return dataclasses.replace(self, **changes)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)
                if getattr(self, field.name) is not None}

    def expanded(self, n: int) -> "Conditions":
        """One sample's conditions (batch 1) shared by n samples."""
        return Conditions(**{name: t.expand(n, *t.shape[1:]) for name, t in self.tensors().items()})

    def doubled(self) -> "Conditions":
        """Guidance: every row twice; the prior drops the class and actions of the second half (`drop`)."""
        return Conditions(**{name: torch.cat([t, t]) for name, t in self.tensors().items()})

    def padded(self, total_slices: int, config) -> "Conditions":
        """Action rows for whole windows (rows past the video only drive frames that are cut off)."""
        if self.actions is None:
            return self
        rows = padded_action_frames(total_slices, config.latent_shape[0], config.frames_per_latent)
        batch, given, width = self.actions.shape
        return self.replace(actions=torch.cat([self.actions, self.actions.new_zeros(batch, rows - given, width)], 1))

    def window(self, start: int, config) -> "Conditions":
        """The action rows of the window that begins at latent slice `start` (other conditions as they are)."""
        if self.actions is None:
            return self
        fpl, t = config.frames_per_latent, config.latent_shape[0]
        return self.replace(actions=self.actions[:, start * fpl: (start + t) * fpl])


def conditioned_on(config, name: str) -> bool:
    """Whether a prior of `config` conditions on the Conditions field `name`."""
    return bool({"frames": config.n_cond_frames, "labels": config.n_classes, "actions": config.action_dim,
                 "context": config.context_dim}[name])


# ---- a new prior's conditions, from its training data ---------------------------------------------------

def _class_fields(dataset, meta: dict) -> dict:
    names = meta.get("class_names") or getattr(dataset, "class_names", None)
    if not names:
        raise ValueError("--condition class: the codes carry no class labels (their data set has no classes)")
    return dict(n_classes=len(names), class_names=list(names))


def _action_fields(dataset, meta: dict) -> dict:
    action_dim = int(meta.get("action_dim") or getattr(dataset, "action_dim", 0) or 0)
    if not action_dim:
        raise ValueError("--condition actions: the codes carry no actions (their data set has none)")
    return dict(action_dim=action_dim, action_range=action_range_of(dataset))


def _context_fields(dataset, meta: dict) -> dict:
    context = dataset[0].get("context") if len(dataset) else None
    if context is None or torch.as_tensor(context).dim() != 1:
        raise ValueError("--condition context: the codes carry no context vector per clip (give the data an "
                         "array '{split}_context' of shape (n_videos, width) and encode it again)")
    return dict(context_dim=int(torch.as_tensor(context).shape[0]))


# The conditions a prior can be trained on (`videogpt train-prior --condition NAME`; first frames have
# --cond-frames), each giving the config fields it needs from the training data set and its meta data.
TRAINABLE_CONDITIONS = {"class": _class_fields, "actions": _action_fields, "context": _context_fields}


def prior_config_from_data(names, dataset, meta: dict) -> dict:
    """The VideoGPTConfig fields of a prior conditioned on `names`, read from its training data."""
    unknown = sorted(set(names) - set(TRAINABLE_CONDITIONS))
    if unknown:
        raise ValueError(f"unknown conditions {unknown}: choose from {sorted(TRAINABLE_CONDITIONS)}")
    fields = {}
    for name in dict.fromkeys(names):
        fields.update(TRAINABLE_CONDITIONS[name](dataset, meta))
    return fields


def _check_frames(frames, config, batch: int) -> None:
    if not config.n_cond_frames:
        if frames is not None:
            raise ValueError("frames given, but this model is not frame-conditional (n_cond_frames=0)")
        return
    expected = (batch, 3, config.n_cond_frames, config.resolution, config.resolution)
    if frames is None:
        raise ValueError(f"frames {expected} are required: this model conditions on {config.n_cond_frames} first "
                         "frame(s)")
    if not isinstance(frames, torch.Tensor) or not frames.is_floating_point() or frames.dim() != 5 \
            or frames.shape[2] < config.n_cond_frames or frames.shape[:2] != expected[:2] \
            or frames.shape[3:] != expected[3:]:
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise ValueError(f"frames must be a float tensor {expected} in [-0.5, 0.5], got {shape}")
    if frames.min() < -0.5 - 1e-3 or frames.max() > 0.5 + 1e-3:
        raise ValueError("frames must lie in [-0.5, 0.5] (uint8 / 255 - 0.5)")


def _check_labels(labels, config, batch: int) -> None:
    if not config.n_classes:
        if labels is not None:
            raise ValueError("labels given, but this model is not class-conditional (n_classes=0)")
        return
    if labels is None:
        raise ValueError(f"labels (B,) are required: this model is class-conditional ({config.n_classes} classes)")
    if not isinstance(labels, torch.Tensor) or labels.shape != (batch,) or labels.is_floating_point():
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"labels must be an integer tensor of shape ({batch},), got {shape}")
    if labels.min() < 0 or labels.max() >= config.n_classes:
        raise ValueError(f"labels must lie in [0, {config.n_classes}), got {labels.tolist()}")


def _check_actions(actions, config, batch: int) -> None:
    if not config.action_dim:
        if actions is not None:
            raise ValueError("actions given, but this model is not action-conditional (action_dim=0)")
        return
    expected = (batch, config.sequence_length, config.action_dim)
    if actions is None:
        raise ValueError(f"actions (B, {config.sequence_length}, {config.action_dim}) are required: this model is "
                         "action-conditional")
    if not isinstance(actions, torch.Tensor) or tuple(actions.shape) != expected:
        shape = tuple(actions.shape) if isinstance(actions, torch.Tensor) else type(actions).__name__
        raise ValueError(f"actions must have shape {expected} (one row per frame), got {shape}")
    if not torch.isfinite(actions).all():
        raise ValueError("actions contain NaN or infinite values")


def _check_context(context, config, batch: int) -> None:
    if not config.context_dim:
        if context is not None:
            raise ValueError("context given, but this model has no context conditioning (context_dim=0)")
        return
    expected = (batch, config.context_dim)
    if context is None:
        raise ValueError(f"context ({config.context_dim},) is required: this model conditions on a vector per clip")
    if not isinstance(context, torch.Tensor) or tuple(context.shape) != expected or not context.is_floating_point() \
            or not torch.isfinite(context).all():
        shape = tuple(context.shape) if isinstance(context, torch.Tensor) else type(context).__name__
        raise ValueError(f"context must be finite floats, {config.context_dim} per clip {expected}, got {shape}")

"""What the trainer knows about a model (TrainingTask): subclass it to train a new kind of model."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn


class TrainingTask:
    """How to get a loss from a batch, how to export the model, and (optionally) what to show in
    TensorBoard."""

    kind = "task"
    find_unused_parameters = False  # for DistributedDataParallel

    def __init__(self, model: nn.Module):
        self.model = model

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A dict with "loss" (the scalar to minimise); other scalar tensors are logged too."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """JSON-able facts that rebuild the model on resume (stored in the checkpoint)."""
        return {"kind": self.kind}

    def export(self, model: nn.Module, directory: Path) -> None:
        """Write the usable model (e.g. save_pretrained) into an empty folder."""
        raise NotImplementedError

    def prepare_model(self, model: nn.Module, distributed: bool, device: torch.device) -> nn.Module:
        """A chance to adapt the model to the run (e.g. synchronised BatchNorm across GPUs)."""
        return model

    def eval_metrics(self, model: nn.Module, batch: dict[str, torch.Tensor],
                     out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Extra validation scalars from a batch and its loss() output."""
        return {}

    def log_media(self, model: nn.Module, batch: dict[str, torch.Tensor], writer, step: int) -> None:
        """Write images / videos for a few fixed examples to the TensorBoard writer."""

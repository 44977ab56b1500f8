"""One model's folder format: `config.json` (the constructor's arguments) and `model.safetensors`.

The models inherit `save_pretrained` / `from_pretrained` from PretrainedMixin; pipeline folders (a VQ-VAE
and a prior side by side) are in checkpoints.py. No pickle is involved in our own format.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from videogpt_core.io.atomic_files import atomic_path, write_text_atomic
from videogpt_core.models.config import config_from_dict, config_to_dict

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class PretrainedMixin:
    """`save_pretrained(dir)` / `from_pretrained(dir)` for an nn.Module with a dataclass `config`."""

    config_class: type
    model_kind: str  # written into config.json so a folder of the wrong kind is recognised

    @classmethod
    def resolve_config(cls, config, kwargs: dict):
        """The constructor takes a config object or its fields as keyword arguments."""
        if config is None:
            return cls.config_class(**kwargs)
        if kwargs:
            raise ValueError("pass either a config or keyword arguments, not both")
        return config

    def save_pretrained(self, directory: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = {"model_kind": self.model_kind, **config_to_dict(self.config)}
        write_text_atomic(directory / CONFIG_NAME, json.dumps(config, indent=2) + "\n")
        tensors = {}
        for name, tensor in self.state_dict().items():
            tensor = tensor.detach().cpu()
            if dtype is not None and tensor.is_floating_point():
                tensor = tensor.to(dtype)
            tensors[name] = tensor.contiguous()
        with atomic_path(directory / WEIGHTS_NAME) as staged:
            save_file(tensors, str(staged), metadata={"format": "pt"})
        return directory

    @classmethod
    def read_config(cls, directory: str | os.PathLike):
        directory = Path(directory)
        config_path = directory / CONFIG_NAME
        if not directory.is_dir():
            raise FileNotFoundError(f"{directory}: no such checkpoint folder")
        if not config_path.is_file():
            hint = ""
            if (directory / cls.model_kind).is_dir():
                hint = f" (it looks like a pipeline folder: use {directory / cls.model_kind})"
            raise FileNotFoundError(f"{config_path}: missing; a {cls.model_kind} folder holds "
                                    f"{CONFIG_NAME} and {WEIGHTS_NAME}{hint}")
        try:
            data = json.loads(config_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{config_path}: not valid JSON ({error})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{config_path}: must be a JSON object of {cls.config_class.__name__} fields, "
                             f"got {type(data).__name__}")
        kind = data.pop("model_kind", None)
        if kind != cls.model_kind:
            raise ValueError(f"{config_path}: holds a {kind!r} model, not a {cls.model_kind!r}")
        return config_from_dict(cls.config_class, data, str(config_path))

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, map_location: str | torch.device = "cpu"):
        directory = Path(directory)
        config = cls.read_config(directory)
        weights_path = directory / WEIGHTS_NAME
        if not weights_path.is_file():
            raise FileNotFoundError(f"{weights_path}: missing")
        try:
            state = load_file(str(weights_path), device=str(map_location))
        except (SafetensorError, OSError) as error:
            raise ValueError(f"{weights_path}: not a readable safetensors file ({error})") from None
        model = cls(config=config)
        model.load_weights(state, source=str(weights_path))
        return model.to(map_location).eval()  # inference-ready; call .train() to fine-tune

    def load_weights(self, state: dict[str, torch.Tensor], source: str = "state dict") -> None:
        """Load a full state dict, naming missing / unexpected / mis-shaped tensors in the error."""
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        wrong = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                 for k in own if k in state and state[k].shape != own[k].shape]
        if missing or unexpected or wrong:
            parts = []
            if missing:
                parts.append(f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}")
            if unexpected:
                parts.append(f"unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
            if wrong:
                parts.append(f"mismatched shapes {wrong[:5]}")
            raise ValueError(f"{source}: does not match the {self.model_kind} config: " + "; ".join(parts))
        # NaN / inf weights would sample codes from NaN logits: a flat-colour video and no error.
        broken = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if broken:
            raise ValueError(f"{source}: {len(broken)} tensor(s) hold NaN or infinite values ({', '.join(broken[:5])}"
                             f"{' ...' if len(broken) > 5 else ''}); the checkpoint is broken: retrain or restore it")
        # Stored in half precision is fine: copy_ converts back to the model's float32.
        self.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})

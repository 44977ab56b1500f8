"""The models the demo serves: pipeline folders found under the checkpoint paths (videogpt_core.models.model_folders),
their configs read up front for the UI (ModelInfo), weights loaded on first use and cached (ModelRegistry)."""
from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from demo.action_presets import action_column_names
from demo.background_compile import BackgroundCompiler, compile_or_keep_eager
from demo.user_errors import user_error
from videogpt_core.data.worlds.controls import world_of_model
from videogpt_core.inference.pipeline import VideoGPTPipeline, load_pipeline
from videogpt_core.models.config import VideoGPTConfig, VQVAEConfig
from videogpt_core.models.model_folders import find_pipeline_folders
from videogpt_core.models.prior import VideoGPT
from videogpt_core.models.vqvae import VQVAE

FRAMES_LIMIT_FACTOR = 4  # at most this many model windows of frames per request (sliding window)
# When each model's decode step is compiled: never, while loading it (the first request waits), or after it
# is loaded, while it already serves uncompiled (CPU; on a GPU that means while loading).
COMPILE_WHEN = ("off", "on-load", "background")
NO_MODEL_MESSAGE = ("No model found. Put pipeline folders (each holding `vqvae/` and `prior/`) under "
                    "`checkpoints/`, or start the demo with `python app.py --checkpoint DIR`.")


@dataclass(frozen=True)
class ModelInfo:
    """What the UI needs to know about a model, read from its configs (no weights loaded)."""

    name: str
    path: Path
    vqvae_config: VQVAEConfig
    prior_config: VideoGPTConfig

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return tuple(self.prior_config.latent_shape)

    @property
    def n_codes(self) -> int:
        return self.prior_config.n_codes

    @property
    def sequence_length(self) -> int:
        return self.prior_config.sequence_length

    @property
    def resolution(self) -> int:
        return self.prior_config.resolution

    @property
    def frames_per_latent(self) -> int:
        return self.prior_config.frames_per_latent

    @property
    def needs_frames(self) -> bool:
        return self.prior_config.n_cond_frames > 0

    @property
    def keeps_start_frame(self) -> bool:
        """Frame 1 of every sample is the given frame through the codec: a time-causal codec encodes it alone
        and its codes start the grid, never sampled. Other models draw frame 1 again."""
        return self.vqvae_config.causal and self.frames_per_latent == 1 and self.latent_shape[0] > 1

    @property
    def takes_start_image(self) -> bool:
        """Frame-conditional models need one; others with room for a prefix can start from a held image."""
        return self.needs_frames or self.latent_shape[0] > 1

    @property
    def class_names(self) -> list[str]:
        cfg = self.prior_config
        return list(cfg.class_names) if cfg.class_names else [str(i) for i in range(cfg.n_classes)]

    @property
    def action_dim(self) -> int:
        return self.prior_config.action_dim

    @property
    def world(self) -> str | None:
        """The built-in world the model is named after (its presets, controls and action names), or None."""
        return world_of_model(self.name)

    @property
    def action_names(self) -> list[str]:
        return action_column_names(self.action_dim, self.world)

    @property
    def guidance_possible(self) -> bool:
        # Guidance needs the unconditional branch that condition dropout trains.
        return self.prior_config.cond_dim > 0 and self.prior_config.cond_drop_prob > 0

    @property
    def max_frames(self) -> int:
        return FRAMES_LIMIT_FACTOR * self.sequence_length

    @property
    def temporal_downsample(self) -> int:
        return self.vqvae_config.downsample[0]

    def conditioning(self) -> str:
        parts = []
        if self.needs_frames:
            n = self.prior_config.n_cond_frames
            parts.append("a first frame" if n == 1 else f"{n} first frames")
        if self.class_names:
            parts.append(f"a class ({len(self.class_names)})")
        if self.action_dim:
            parts.append(f"per-frame actions ({', '.join(self.action_names)})")
        return ", ".join(parts) if parts else "nothing (unconditional)"


class ModelRegistry:
    """The models the demo serves: configs read up front, weights loaded on first use and cached."""

    def __init__(self, folders: dict[str, Path], device: str | None = None, compile: str = "off"):
        if compile not in COMPILE_WHEN:
            raise ValueError(f"compile must be one of {', '.join(COMPILE_WHEN)}, got {compile!r}")
        self.device = device
        self.compile = compile  # when each decode step is torch.compiled (COMPILE_WHEN)
        self.compiler = BackgroundCompiler()
        self.infos: dict[str, ModelInfo] = {}
        self.problems: list[str] = []  # folders that could not be read, shown in the UI
        for name, path in folders.items():
            try:
                self.infos[name] = ModelInfo(name, Path(path), VQVAE.read_config(Path(path) / "vqvae"),
                                             VideoGPT.read_config(Path(path) / "prior"))
            except (ValueError, FileNotFoundError, TypeError) as error:
                self.problems.append(f"{path}: {error}")
        self._pipelines: dict[str, VideoGPTPipeline] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_paths(cls, paths: Iterable[str | Path], device: str | None = None,
                   must_exist: bool = True, compile: str = "off") -> "ModelRegistry":
        return cls(find_pipeline_folders(paths, must_exist), device, compile)

    @property
    def names(self) -> list[str]:
        return list(self.infos)

    def info(self, name: str | None) -> ModelInfo:
        if not self.infos:
            raise user_error(NO_MODEL_MESSAGE)
        if not isinstance(name, str) or name not in self.infos:
            raise user_error(f"unknown model {name!r}; choose one of: {', '.join(self.infos)}")
        return self.infos[name]

    def pipeline(self, name: str) -> VideoGPTPipeline:
        info = self.info(name)
        pipeline = self._pipelines.get(name)
        if pipeline is None:
            with self._lock:  # two first requests must not load the same weights twice
                pipeline = self._pipelines.get(name)
                if pipeline is None:
                    pipeline = self._load(name, info.path)
                    self._pipelines[name] = pipeline
        return pipeline

    def _load(self, name: str, path: Path) -> VideoGPTPipeline:
        pipeline = load_pipeline(path, device=self.device)
        if self.compile == "background" and pipeline.device.type == "cpu":
            self.compiler.submit(name, pipeline)
        elif self.compile != "off":  # compiled and warmed up now, not in a user's first generation
            compile_or_keep_eager(name, pipeline)
        return pipeline

    def preload(self) -> None:
        for name in self.names:
            self.pipeline(name)

    def status_message(self) -> str:
        """Markdown for the top of the page: what is served, or why nothing is."""
        lines = [] if self.infos else [f"**{NO_MODEL_MESSAGE}**"]
        lines += [f"- could not read {problem}" for problem in self.problems]
        return "\n".join(lines)

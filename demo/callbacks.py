"""The demo's logic as plain functions that the Gradio layout only wires up (and tests call directly):
finding and caching models, parsing inputs, streaming generation, continuing a world, reconstruction, model cards.

A user's bad input (a ValueError / FileNotFoundError here or in videogpt_core) surfaces as a `gr.Error`.
"""
from __future__ import annotations

import atexit
import contextlib
import functools
import inspect
import json
import math
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd

from demo.action_presets import action_column_names, default_preset, preset_actions, presets_for
from demo.examples import example_frames
from videogpt_core.action_range import check_actions_in_range
from videogpt_core.config import VideoGPTConfig, VQVAEConfig, config_to_dict
from videogpt_core.data.worlds.controls import world_of_model
from videogpt_core.pipeline import VideoGPTPipeline, load_pipeline
from videogpt_core.prior import VideoGPT
from videogpt_core.video_io import read_image, upscale_nearest, write_gif, write_mp4
from videogpt_core.vqvae import VQVAE

MAX_SAMPLES = 4
MAX_IMAGE_PIXELS = 20_000_000  # uploads beyond ~20 MP are refused before decoding
FRAMES_LIMIT_FACTOR = 4  # at most this many model windows of frames per request (sliding window)
DEFAULT_FPS = 10  # the built-in worlds' frame rate
DISPLAY_SIZE = 256  # results are upscaled (nearest neighbour) to about this many pixels per frame
PREVIEW_SIZE = 96  # live-preview frame size
PREVIEW_COLUMNS = 8  # frames per row of the live preview
DEFAULT_GUIDANCE = 2.0  # for models trained with condition dropout: digits samples 96% on-class vs 89% at 1
NO_MODEL_MESSAGE = ("No model found. Put pipeline folders (each holding `vqvae/` and `prior/`) under "
                    "`checkpoints/`, or start the demo with `python app.py --checkpoint DIR`.")


# ----------------------------------------------------------------------------- errors


def user_error(message: str) -> gr.Error:
    """A message for the person at the browser; not a server fault, so no traceback in the log. It stays on
    screen until closed (a toast that vanished after 10 s left only red badges to puzzle over)."""
    return gr.Error(message, duration=None, print_exception=False)


def user_errors(fn: Callable) -> Callable:
    """Turn ValueError / FileNotFoundError (a user's bad input) into gr.Error; works for generators too."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def generator_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except gr.Error:  # already worded for the user (gr.Error is a ValueError too)
                raise
            except (ValueError, FileNotFoundError) as error:
                raise user_error(str(error)) from error
        return generator_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (ValueError, FileNotFoundError) as error:
            raise user_error(str(error)) from error
    return wrapper


# ----------------------------------------------------------------------------- models


def is_pipeline_folder(path: Path) -> bool:
    return (path / "vqvae").is_dir() and (path / "prior").is_dir()


def find_pipeline_folders(paths: Iterable[str | Path], must_exist: bool = True) -> dict[str, Path]:
    """Model name -> pipeline folder. Each path is a pipeline folder or a folder of them (searched one deep)."""
    found: dict[str, Path] = {}
    for given in paths:
        path = Path(given).expanduser()
        if not path.is_dir():
            if must_exist:
                raise FileNotFoundError(f"{path}: no such checkpoint folder; give a pipeline folder (with "
                                        "vqvae/ and prior/) or a folder of them")
            continue
        candidates = [path] if is_pipeline_folder(path) else sorted(p for p in path.iterdir()
                                                                     if p.is_dir() and is_pipeline_folder(p))
        for folder in candidates:
            name = folder.name
            if name in found and found[name].resolve() != folder.resolve():
                name = f"{folder.parent.name}/{folder.name}"  # two folders of the same name: keep both
            found.setdefault(name, folder)
    return found


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

    def __init__(self, folders: dict[str, Path], device: str | None = None, compile: bool = False):
        self.device = device
        self.compile = compile  # torch.compile each decode step, compiled when the model is loaded
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
                   must_exist: bool = True, compile: bool = False) -> "ModelRegistry":
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
                    pipeline = load_pipeline(info.path, device=self.device, compile=self.compile)
                    try:
                        pipeline.warm_up()  # compiles now, not in a user's first generation
                    except Exception as error:  # e.g. no C++ compiler: serve the model uncompiled
                        print(f"warning: could not compile model {name}, serving it uncompiled: {error}",
                              file=sys.stderr)
                        pipeline = load_pipeline(info.path, device=self.device)
                    self._pipelines[name] = pipeline
        return pipeline

    def preload(self) -> None:
        for name in self.names:
            self.pipeline(name)

    def status_message(self) -> str:
        """Markdown for the top of the page: what is served, or why nothing is."""
        lines = [] if self.infos else [f"**{NO_MODEL_MESSAGE}**"]
        lines += [f"- could not read {problem}" for problem in self.problems]
        return "\n".join(lines)


class OutputStore:
    """Folders for result files. Gradio copies returned files into its own cache, so only the newest
    `keep` folders are kept (for direct callers) and the whole root is removed when the process exits."""

    def __init__(self, root: str | Path | None = None, keep: int = 64):
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="videogpt-demo-outputs-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.keep = keep
        self._lock = threading.Lock()
        self._folders: list[Path] = []
        atexit.register(shutil.rmtree, self.root, True)

    def new_folder(self) -> Path:
        with self._lock:
            folder = Path(tempfile.mkdtemp(dir=self.root))
            self._folders.append(folder)
            while len(self._folders) > self.keep:
                shutil.rmtree(self._folders.pop(0), ignore_errors=True)
        return folder


# ----------------------------------------------------------------------------- parsing inputs


def whole_number(value, name: str, low: int | None = None, high: int | None = None) -> int:
    """An int from a UI number (Gradio sends floats), or a clear error naming the field and the range."""
    if value is None or isinstance(value, bool):
        raise ValueError(f"{name} is missing")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number, got {value!r}") from None
    if not math.isfinite(number) or number != int(number):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    number = int(number)
    if (low is not None and number < low) or (high is not None and number > high):
        raise ValueError(f"{name} must be between {low} and {high}, got {number}")
    return number


def real_number(value, name: str) -> float:
    if value is None or isinstance(value, bool):
        raise ValueError(f"{name} is missing")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None


def sampling_settings(temperature, top_k, top_p, guidance) -> dict:
    """UI values -> the sampler's keyword arguments. top_k 0 and guidance 1 mean off; the sampler checks
    the ranges (and its ValueError becomes the user's message)."""
    settings = {"temperature": real_number(temperature, "temperature"), "top_k": None, "top_p": None,
                "cfg_scale": None}
    if top_k is not None and real_number(top_k, "top-k") != 0:
        top_k = real_number(top_k, "top-k")
        # A fraction, NaN or inf is passed on as it is: the sampler's message refuses it.
        settings["top_k"] = int(top_k) if math.isfinite(top_k) and top_k == int(top_k) else top_k
    if top_p is not None:
        settings["top_p"] = real_number(top_p, "top-p")
    if guidance is not None and real_number(guidance, "guidance scale") != 1.0:
        settings["cfg_scale"] = real_number(guidance, "guidance scale")
    return settings


def pick_seed(seed, randomize: bool) -> int:
    if randomize:
        return int(np.random.default_rng().integers(0, 2**31 - 1))
    return whole_number(seed, "seed", 0, 2**63 - 1)


def load_start_image(image) -> np.ndarray | None:
    """Any uploaded image (path, array or PIL image; any size, alpha, grayscale) -> uint8 RGB (H, W, 3)."""
    if image is None or (isinstance(image, str) and not image.strip()):
        return None
    if isinstance(image, dict):  # a FileData-like payload from an API client
        image = image.get("path")
    if isinstance(image, (str, Path)):
        with _named_by_file_name(image):
            return read_image(image, max_pixels=MAX_IMAGE_PIXELS)
    return read_image(image, max_pixels=MAX_IMAGE_PIXELS)


@contextlib.contextmanager
def _named_by_file_name(path: str | Path):
    """Errors name an upload by its file name, not by the server's temporary folder."""
    try:
        yield
    except (ValueError, FileNotFoundError) as error:
        message = str(error).replace(str(path), Path(path).name)
        raise type(error)(message) if type(error) in (ValueError, FileNotFoundError) else ValueError(message) \
            from error


def _cell(value, row: int, column: str) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"action row {row}, column {column} is empty; give a number (0 for no move)")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"action row {row}, column {column}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"action row {row}, column {column}: {value!r} is not a finite number")
    return number


def actions_from_table(table, action_dim: int) -> np.ndarray:
    """The action editor's rows (DataFrame, list of rows, array or {'data': rows}) -> (T, action_dim) float32."""
    if table is None:
        raise ValueError("no actions given: fill the action table (one row per frame) or use a preset")
    if isinstance(table, dict):
        table = table.get("data", [])
    rows = table.values.tolist() if isinstance(table, pd.DataFrame) else np.asarray(table, dtype=object).tolist()
    if not isinstance(rows, list) or not rows or not isinstance(rows[0], list):
        raise ValueError("no actions given: fill the action table (one row per frame) or use a preset")
    names = action_column_names(action_dim)
    actions = np.zeros((len(rows), action_dim), dtype=np.float32)
    for i, row in enumerate(rows):
        if len(row) != action_dim:
            raise ValueError(f"action row {i + 1} has {len(row)} values; this model takes {action_dim} per frame "
                             f"({', '.join(names)})")
        actions[i] = [_cell(value, i + 1, names[j]) for j, value in enumerate(row)]
    return actions


def actions_table(actions: np.ndarray, world: str | None = None) -> pd.DataFrame:
    # Rounded in float64: float32's 2.28 would be shown as 2.2799999713897705.
    actions = np.asarray(actions, dtype=np.float64).round(3)
    return pd.DataFrame(actions, columns=action_column_names(actions.shape[1], world))


_REPEAT = re.compile(r"^(?P<entry>.*?)\s*[x*×]\s*(?P<count>\d+)$")


def parse_actions_text(text: str | None, action_dim: int) -> np.ndarray:
    """'3,0; 3,0; 0,2' (entries split by ';' or new lines, values by ',' or spaces; 'dx,dy x4' repeats an
    entry) -> (T, action_dim) float32. The error names the bad entry."""
    names = ",".join(action_column_names(action_dim))
    entries = [e.strip() for e in re.split(r"[;\n]", text or "") if e.strip()]
    if not entries:
        raise ValueError(f"no actions in the text: write one {names} entry per frame, e.g. '3,0; 3,0; 0,2' "
                         "('3,0 x4' repeats an entry)")
    rows: list[list[float]] = []
    for number, entry in enumerate(entries, start=1):
        body, count = entry, 1
        match = _REPEAT.match(entry)
        if match:
            body, count = match.group("entry"), int(match.group("count"))
            if not 1 <= count <= 1000:
                raise ValueError(f"action entry {number} ({entry!r}): the repeat count must be 1-1000")
        values = [v for v in re.split(r"[,\s]+", body.strip()) if v]
        if len(values) != action_dim:
            raise ValueError(f"action entry {number} ({entry!r}) has {len(values)} value(s); this model takes "
                             f"{action_dim} per frame ({names})")
        row = []
        for value in values:
            try:
                number_value = float(value)
            except ValueError:
                raise ValueError(f"action entry {number} ({entry!r}): {value!r} is not a number") from None
            if not math.isfinite(number_value):
                raise ValueError(f"action entry {number} ({entry!r}): {value!r} is not a finite number")
            row.append(number_value)
        rows.extend([row] * count)
    return np.asarray(rows, dtype=np.float32)


def actions_to_text(actions: np.ndarray) -> str:
    """The compact text form of (T, action_dim) actions, runs of equal rows written as 'dx,dy xN'."""
    parts: list[str] = []
    rows = [",".join(f"{v:g}" for v in np.asarray(row, dtype=np.float64).round(3)) for row in actions]
    i = 0
    while i < len(rows):
        j = i
        while j + 1 < len(rows) and rows[j + 1] == rows[i]:
            j += 1
        parts.append(rows[i] if j == i else f"{rows[i]} x{j - i + 1}")
        i = j + 1
    return "; ".join(parts)


def resized_actions(table, n_frames: int, action_dim: int) -> np.ndarray:
    """The table's rows cut or padded (with zeros: no move) to n_frames; a broken table starts over."""
    try:
        actions = actions_from_table(table, action_dim)
    except ValueError:
        actions = np.zeros((0, action_dim), dtype=np.float32)
    if len(actions) >= n_frames:
        return actions[:n_frames]
    return np.concatenate([actions, np.zeros((n_frames - len(actions), action_dim), dtype=np.float32)])


# ----------------------------------------------------------------------------- pictures


def display_scale(resolution: int, target: int = DISPLAY_SIZE) -> int:
    """Integer nearest-neighbour factor that brings a frame to about `target` pixels."""
    return max(1, target // max(1, resolution))


def tile_samples(frames: np.ndarray, gap: int = 1, gap_value: int = 24) -> np.ndarray:
    """(n, T, H, W, 3) -> (T, H, n*W + (n-1)*gap, 3): samples side by side, split by thin dark lines."""
    n, t, h, w, _ = frames.shape
    out = np.full((t, h, n * w + (n - 1) * gap, 3), gap_value, dtype=np.uint8)
    for i in range(n):
        out[:, :, i * (w + gap): i * (w + gap) + w] = frames[i]
    return out


def progress_grid(frames: np.ndarray, total_frames: int, columns: int = PREVIEW_COLUMNS,
                  size: int = PREVIEW_SIZE) -> np.ndarray:
    """Frames decoded so far (n, T_done, H, W, 3) as a grid: one block of rows per sample, `columns`
    frames per row, frames still to come drawn dark; upscaled (nearest neighbour) to about `size` px."""
    n, done, h, w, _ = frames.shape
    total = max(total_frames, done, 1)
    columns = min(columns, total)
    rows = math.ceil(total / columns)
    gap = 1
    block_h = rows * (h + gap) - gap
    grid = np.full((n * (block_h + 3 * gap) - 3 * gap, columns * (w + gap) - gap, 3), 255, dtype=np.uint8)
    for i in range(n):
        top = i * (block_h + 3 * gap)
        for f in range(total):
            y, x = top + (f // columns) * (h + gap), (f % columns) * (w + gap)
            grid[y: y + h, x: x + w] = frames[i, f] if f < done else 48
    return upscale_nearest(grid[None], display_scale(max(h, w), size))[0]


def code_palette(n_codes: int) -> np.ndarray:
    """(n_codes, 3) uint8: one distinct colour per code (golden-ratio hues, three lightness bands)."""
    import colorsys

    colours = [colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.55 + 0.15 * (i % 3), 0.95 - 0.25 * (i % 3 == 1))
               for i in range(n_codes)]
    return (np.asarray(colours) * 255).round().astype(np.uint8)


def codes_image(codes: np.ndarray, n_codes: int, size: int = 128) -> np.ndarray:
    """Latent grids (t, h, w) -> one image: each time slice's grid coloured by code, slices left to right."""
    t, h, w = codes.shape
    cell = max(1, size // max(h, w))
    colours = code_palette(n_codes)[codes]  # (t, h, w, 3)
    slices = upscale_nearest(colours, cell)  # (t, h*cell, w*cell, 3)
    gap = max(2, cell // 2)
    out = np.full((h * cell, t * w * cell + (t - 1) * gap, 3), 255, dtype=np.uint8)
    for i in range(t):
        out[:, i * (w * cell + gap): i * (w * cell + gap) + w * cell] = slices[i]
    return out


# ----------------------------------------------------------------------------- model controls and cards


def examples_for_model(info: ModelInfo | None) -> list[tuple[str, str]]:
    """Example frames of the world the model's name mentions (e.g. 'pusher'): another world's frame would be
    taken silently as this model's start image. A model named after no world gets none."""
    examples = example_frames()
    if info is None:
        return examples
    name = info.name.lower()
    return [item for item in examples if item[1].split()[0] in name]


@dataclass
class ModelControls:
    """The Generate controls that depend on the chosen model."""

    summary: str
    start_image_visible: bool
    start_image_label: str
    class_names: list[str]
    action_dim: int
    actions: np.ndarray | None
    guidance_visible: bool
    n_frames: int
    max_frames: int
    examples: list[tuple[str, str]]
    guidance: float = 1.0  # the slider's starting value (1 = off)
    world: str | None = None
    presets: tuple[str, ...] = presets_for(None)


def model_controls(registry: ModelRegistry, name: str | None) -> ModelControls:
    if not registry.names:
        return ModelControls(NO_MODEL_MESSAGE, False, "First frame", [], 0, None, False, 16, 64, example_frames())
    info = registry.info(name)
    t, h, w = info.latent_shape
    summary = (f"**{info.name}** conditions on {info.conditioning()} · {info.sequence_length} frames of "
               f"{info.resolution}×{info.resolution} per window → {t}×{h}×{w} codes of {info.n_codes}")
    if info.needs_frames:
        image_label = "First frame (required: any image, resized and center-cropped)"
    else:
        image_label = (f"Start image (optional: held still for the first {info.frames_per_latent} frames, "
                       "the model continues from there)")
    return ModelControls(
        summary=summary,
        start_image_visible=info.takes_start_image,
        start_image_label=image_label,
        class_names=info.class_names,
        action_dim=info.action_dim,
        actions=(preset_actions(default_preset(info.world), info.sequence_length, info.action_dim, world=info.world,
                                action_range=info.prior_config.action_range) if info.action_dim else None),
        guidance_visible=info.guidance_possible,
        guidance=DEFAULT_GUIDANCE if info.guidance_possible else 1.0,
        n_frames=info.sequence_length,
        max_frames=info.max_frames,
        examples=examples_for_model(info),
        world=info.world,
        presets=presets_for(info.world),
    )


def _parameter_count(weights: Path) -> int | None:
    """Parameters (and buffers) in a safetensors file, from its header: nothing is loaded."""
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="pt") as handle:
            return sum(math.prod(handle.get_slice(key).get_shape()) for key in handle.keys())
    except Exception:  # a broken file: the card says so instead of failing
        return None


def _config_table(config) -> str:
    rows = [f"| `{key}` | {value} |" for key, value in config_to_dict(config).items()]
    return "\n".join(["| field | value |", "|---|---|", *rows])


def _metrics_tables(folder: Path) -> list[str]:
    """Any JSON files beside the models (training / evaluation summaries) as tables."""
    parts = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(data, dict):
            flat = {k: v for k, v in data.items() if isinstance(v, (int, float, str, bool))}
            if flat:
                rows = [f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in flat.items()]
                parts.append(f"### {path.stem}\n\n| metric | value |\n|---|---|\n" + "\n".join(rows))
    return parts


def _strip_front_matter(text: str) -> str:
    if text.startswith("---"):
        end = text.find("\n---", 3)
        if end != -1:
            return text[end + 4:].lstrip("\n")
    return text


@user_errors
def model_card(registry: ModelRegistry, name: str | None) -> str:
    """The model's README.md if it ships one, else a card generated from its configs and files."""
    if not registry.names:
        return NO_MODEL_MESSAGE
    info = registry.info(name)
    readme = info.path / "README.md"
    if readme.is_file():
        return _strip_front_matter(readme.read_text(errors="replace"))
    counts = {part: _parameter_count(info.path / part / "model.safetensors") for part in ("vqvae", "prior")}
    count_rows = [f"| {part} | {count / 1e6:.2f} M |" if count is not None else f"| {part} | unreadable |"
                  for part, count in counts.items()]
    t, h, w = info.latent_shape
    lines = [
        f"# {info.name}",
        "",
        f"Conditions on {info.conditioning()}. Generates {info.sequence_length} frames of "
        f"{info.resolution}×{info.resolution} per window (longer videos slide the window), as a "
        f"{t}×{h}×{w} grid of codes from a codebook of {info.n_codes}.",
        "",
        f"Folder: `{info.path}` (no README.md there, so this card is generated from the configs).",
        "",
        "## Parameters",
        "",
        "| part | parameters |",
        "|---|---|",
        *count_rows,
        "",
        "## VQ-VAE configuration",
        "",
        _config_table(info.vqvae_config),
        "",
        "## Prior configuration",
        "",
        _config_table(info.prior_config),
    ]
    metrics = _metrics_tables(info.path)
    lines += ["", "## Training and evaluation", ""]
    lines += metrics if metrics else ["No metrics files (`*.json`) were found beside the model."]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- generation


@dataclass
class WorldSession:
    """The last result, kept in gr.State so `continue_generation` can extend it."""

    model_name: str
    frames: np.ndarray  # (n, T, H, W, 3) uint8: every sample's whole trajectory so far
    actions: np.ndarray | None  # (T, action_dim): the commands behind the trajectory (shared by the samples)
    label: str | None


@dataclass
class GenerationUpdate:
    """One step of a streaming generation: the live preview and progress, then the finished files."""

    preview: np.ndarray  # uint8 image (grid of the frames so far)
    progress: str  # markdown
    video: str | None = None  # H.264 mp4 (all samples side by side, upscaled)
    gif: str | None = None
    seed: int | None = None
    session: WorldSession | None = None
    tokens_done: int = 0
    tokens_total: int = 0

    @property
    def finished(self) -> bool:
        return self.video is not None


def start_frames(info: ModelInfo, image: np.ndarray | None) -> np.ndarray | None:
    """The uploaded image as the frames the pipeline takes: the conditioning frame(s) of a frame-conditional
    model, or the first latent slice held still for a model that can continue a prefix."""
    if image is None:
        return None
    if info.needs_frames:
        count = info.prior_config.n_cond_frames
    elif info.latent_shape[0] > 1:
        count = info.frames_per_latent
    else:
        return None  # this model has no use for an image: ignore it
    return np.repeat(image[None], count, axis=0)


def _prefix_slices(info: ModelInfo, frames: np.ndarray | None, n_frames: int) -> int:
    """Latent slices that the pipeline encodes from the given frames instead of sampling (as it decides)."""
    if frames is None:
        return 0
    t = info.latent_shape[0]
    return min(len(frames) // info.frames_per_latent, t - 1, math.ceil(n_frames / info.frames_per_latent))


def _stream(registry: ModelRegistry, store: OutputStore, info: ModelInfo, *, n: int, frames, label, actions,
            settings: dict, seed: int, n_frames: int, keep_from: int, past: np.ndarray | None,
            session_actions: np.ndarray | None, verb: str) -> Iterator[GenerationUpdate]:
    """Run pipeline.stream, yielding a preview after every latent slice, then write the mp4 and gif.

    Output frames before `keep_from` re-encode a given prefix and are dropped; `past` (n or 1, T0, H, W, 3)
    is put in front of the new frames in the final video."""
    pipeline = registry.pipeline(info.name)
    _, h, w = info.latent_shape
    prefix_tokens = _prefix_slices(info, frames, n_frames) * h * w
    new_total = n_frames - keep_from
    started = time.perf_counter()
    update = None
    for update in pipeline.stream(n, frames=frames, label=label, actions=actions, seed=seed, n_frames=n_frames,
                                  **settings):
        elapsed = time.perf_counter() - started
        sampled = max(0, update.tokens_done - prefix_tokens) * n
        rate = sampled / elapsed if elapsed > 0 else 0.0
        percent = 100.0 * update.tokens_done / max(1, update.tokens_total)
        progress = (f"{verb}: **{update.tokens_done} / {update.tokens_total} tokens** per sample ({percent:.0f}%)"
                    f" × {n} sample(s) · {rate:.0f} tokens/s · {elapsed:.1f} s")
        preview = progress_grid(update.frames[:, keep_from:], new_total)
        yield GenerationUpdate(preview, progress, tokens_done=update.tokens_done, tokens_total=update.tokens_total)
    if update is None:
        raise ValueError("the sampler produced nothing")
    elapsed = time.perf_counter() - started
    new_frames = update.frames[:, keep_from:]
    if past is not None:
        past = np.broadcast_to(past, (n, *past.shape[1:]))
        trajectory = np.concatenate([past, new_frames], axis=1)
    else:
        trajectory = new_frames
    folder = store.new_folder()
    tiled = tile_samples(trajectory)
    scale = display_scale(info.resolution)
    video = write_mp4(folder / f"{info.name.replace('/', '-')}-seed{seed}.mp4", tiled, DEFAULT_FPS, scale=scale)
    gif = write_gif(folder / f"{info.name.replace('/', '-')}-seed{seed}.gif", tiled, DEFAULT_FPS,
                    scale=max(1, scale // 2))
    sampled = max(0, update.tokens_total - prefix_tokens) * n
    progress = (f"Done: {update.tokens_total} tokens per sample × {n} sample(s) in {elapsed:.1f} s "
                f"({sampled / max(elapsed, 1e-9):.0f} tokens/s) · seed {seed} · "
                f"{trajectory.shape[1]} frames")
    session = WorldSession(info.name, trajectory, session_actions, label)
    yield GenerationUpdate(progress_grid(new_frames, new_total), progress, str(video), str(gif), seed, session,
                           update.tokens_total, update.tokens_total)


@user_errors
def generate(registry: ModelRegistry, store: OutputStore, model_name: str | None, start_image, label, actions,
             temperature, top_k, top_p, guidance, seed, randomize_seed: bool, n_samples,
             n_frames) -> Iterator[GenerationUpdate]:
    """Sample new videos, streaming a preview after every latent slice; the last update holds the files.

    Inputs a model does not take (a hidden control's stale value) are ignored."""
    info = registry.info(model_name)
    n = whole_number(n_samples, "number of samples", 1, MAX_SAMPLES)
    n_frames = whole_number(n_frames, "number of frames", 1, info.max_frames)
    settings = sampling_settings(temperature, top_k, top_p, guidance)
    seed = pick_seed(seed, bool(randomize_seed))
    frames = start_frames(info, load_start_image(start_image)) if info.takes_start_image else None
    if info.needs_frames and frames is None:
        raise ValueError("this model starts from a first frame: upload an image or pick an example frame")
    label = (str(label) if label not in (None, "") else None) if info.class_names else None
    if info.class_names and label is None:
        raise ValueError(f"choose a class: {', '.join(info.class_names)}")
    action_rows = None
    if info.action_dim:
        action_rows = actions_from_table(actions, info.action_dim)
        check_actions_in_range(action_rows, info.prior_config.action_range, action_column_names(info.action_dim))
        if len(action_rows) != n_frames:
            raise ValueError(f"the action table has {len(action_rows)} rows but {n_frames} frames are asked for: "
                             "give one row per frame (changing the frame count resizes the table)")
    yield from _stream(registry, store, info, n=n, frames=frames, label=label, actions=action_rows,
                       settings=settings, seed=seed, n_frames=n_frames, keep_from=0, past=None,
                       session_actions=action_rows, verb="Sampling")


def continuation_context(info: ModelInfo, available: int) -> int:
    """How many of the last frames a continuation feeds back: whole latent slices up to one less than the
    window (the pipeline's video-prediction prefix), or, for a one-slice window, the conditioning frames."""
    fpl, t = info.frames_per_latent, info.latent_shape[0]
    context = min(available // fpl, t - 1) * fpl
    if context == 0 and info.needs_frames and available >= info.prior_config.n_cond_frames:
        context = info.prior_config.n_cond_frames
    if context == 0:
        raise ValueError(f"model {info.name} cannot continue a video: its window is one latent slice and it "
                         "takes no first frame")
    return context


@user_errors
def continue_generation(registry: ModelRegistry, store: OutputStore, session: WorldSession | None, sample,
                        actions, temperature, top_k, top_p, guidance, seed, randomize_seed: bool, n_samples,
                        n_new_frames) -> Iterator[GenerationUpdate]:
    """Extend one sample of the last result by n_new_frames (driven by the action table's rows, for an
    action-conditional model): its last frames become the video-prediction prefix of a new window, and
    n_samples possible futures are drawn. The result (past + future) replaces the session."""
    if session is None:
        raise ValueError("nothing to continue yet: generate a video first")
    info = registry.info(session.model_name)
    index = whole_number(sample, "sample to continue", 1, len(session.frames)) - 1
    n = whole_number(n_samples, "number of samples", 1, MAX_SAMPLES)
    n_new = whole_number(n_new_frames, "number of frames to add", 1, info.max_frames)
    settings = sampling_settings(temperature, top_k, top_p, guidance)
    seed = pick_seed(seed, bool(randomize_seed))
    past = session.frames[index]
    context = continuation_context(info, len(past))
    action_rows = session_actions = None
    if info.action_dim:
        new_actions = actions_from_table(actions, info.action_dim)
        check_actions_in_range(new_actions, info.prior_config.action_range, action_column_names(info.action_dim))
        if len(new_actions) != n_new:
            raise ValueError(f"the action table has {len(new_actions)} rows but {n_new} frames are to be added: "
                             "give one row per new frame")
        previous = session.actions if session.actions is not None else np.zeros((len(past), info.action_dim))
        action_rows = np.concatenate([previous[-context:], new_actions]).astype(np.float32)
        session_actions = np.concatenate([previous, new_actions]).astype(np.float32)
    yield from _stream(registry, store, info, n=n, frames=past[-context:], label=session.label,
                       actions=action_rows, settings=settings, seed=seed, n_frames=context + n_new,
                       keep_from=context, past=past[None], session_actions=session_actions, verb="Continuing")


# ----------------------------------------------------------------------------- small UI helpers


def example_path(examples: list[tuple[str, str]], index: int | None, caption: str | None = None) -> str | None:
    """The example frame that a gallery click picked (by caption, else by position)."""
    for path, text in examples:
        if caption is not None and text == caption:
            return path
    if index is not None and 0 <= int(index) < len(examples):
        return examples[int(index)][0]
    return None


@user_errors
def apply_actions_text(text: str | None, action_dim: int, world: str | None = None) -> pd.DataFrame:
    """The text form parsed into the action table (the error names the bad entry)."""
    if not action_dim:
        raise ValueError("this model takes no actions")
    return actions_table(parse_actions_text(text, action_dim), world)


@user_errors
def apply_preset(name: str, n_frames, action_dim: int, seed=0, world: str | None = None,
                 action_range: list[list[float]] | None = None) -> tuple[pd.DataFrame, str]:
    frames = whole_number(n_frames, "number of frames", 1, 10_000)
    seed = whole_number(seed, "seed", 0, 2**63 - 1) if seed is not None else 0
    actions = preset_actions(name, frames, action_dim, seed % (2**32), world, action_range)
    return actions_table(actions, world), actions_to_text(actions)


__all__ = [
    "GenerationUpdate", "MAX_SAMPLES", "ModelControls", "ModelInfo", "ModelRegistry", "NO_MODEL_MESSAGE",
    "OutputStore", "WorldSession", "actions_from_table", "actions_table", "actions_to_text",
    "apply_actions_text", "apply_preset", "code_palette", "codes_image", "continue_generation",
    "continuation_context", "display_scale", "example_path", "examples_for_model", "find_pipeline_folders",
    "generate", "load_start_image", "model_card", "model_controls", "parse_actions_text",
    "progress_grid", "resized_actions", "sampling_settings", "tile_samples", "user_errors",
]

"""What every benchmark harness shares: the model sizes, the machine description, timing with warmup and a
median, and the report (a readable table, then JSON on stdout and optionally in a file)."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from videogpt_core.models.config import VideoGPTConfig, VQVAEConfig
from videogpt_core.models.prior import VideoGPT
from videogpt_core.models.vqvae import VQVAE


@dataclass(frozen=True)
class ModelSize:
    name: str
    description: str
    vqvae: dict[str, Any]
    prior: dict[str, Any]


SIZES: dict[str, ModelSize] = {
    "demo": ModelSize(
        "demo", "64x64x16 video -> 4x16x16 latents of 512 codes; prior hidden 252, 4 layers, 4 heads",
        vqvae=dict(embedding_dim=64, n_codes=512, n_hiddens=96, n_res_layers=2, downsample=(4, 4, 4),
                   sequence_length=16, resolution=64),
        prior=dict(hidden_dim=252, n_heads=4, n_layers=4)),
    "bair": ModelSize(
        "bair", "the reference BAIR size: 64x64x16 video -> 4x32x32 latents of 1024 codes (VQ-VAE 240 hiddens, "
        "4 residual layers, downsample 4x2x2); prior hidden 576, 8 layers, 4 heads",
        vqvae=dict(embedding_dim=256, n_codes=1024, n_hiddens=240, n_res_layers=4, downsample=(4, 2, 2),
                   sequence_length=16, resolution=64),
        prior=dict(hidden_dim=576, n_heads=4, n_layers=8)),
    "uncond1024": ModelSize(
        "uncond1024", "an unconditional prior over 4x16x16 latents of 1024 codes (VQ-VAE 240 hiddens, 4 residual "
        "layers, downsample 4x4x4); prior hidden 576, 8 layers, 4 heads",
        vqvae=dict(embedding_dim=256, n_codes=1024, n_hiddens=240, n_res_layers=4, downsample=(4, 4, 4),
                   sequence_length=16, resolution=64),
        prior=dict(hidden_dim=576, n_heads=4, n_layers=8)),
    "tiny": ModelSize(
        "tiny", "16x16x4 video -> 2x4x4 latents of 16 codes; prior hidden 24, 2 layers (smoke tests only)",
        vqvae=dict(embedding_dim=8, n_codes=16, n_hiddens=16, n_res_layers=1, downsample=(2, 4, 4),
                   sequence_length=4, resolution=16),
        prior=dict(hidden_dim=24, n_heads=2, n_layers=2)),
}
# The frame encoder of the small sizes: the reference ResNet-34 would dwarf a 4-layer prior.
SMALL_FRAME_ENCODER = dict(frame_encoder_widths=(32, 64, 96, 96), frame_encoder_blocks=(1, 1, 1, 1))
CONDITIONS = ("none", "frame", "actions", "frame+actions")


def size_names(text: str) -> list[ModelSize]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SIZES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown size(s) {unknown}; choose from {', '.join(SIZES)}")
    return [SIZES[name] for name in names]


def positive_ints(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected whole numbers >= 1, got {text!r}")
    return values


def prior_kwargs(size: ModelSize, condition: str = "none") -> dict[str, Any]:
    kwargs = dict(size.prior, dropout=0.0, attn_dropout=0.0)
    if "frame" in condition:
        kwargs["n_cond_frames"] = 1
        if size.name != "bair":  # BAIR keeps the reference's ResNet-34
            kwargs.update(SMALL_FRAME_ENCODER)
    if "actions" in condition:
        kwargs["action_dim"] = 2
    return kwargs


def build_models(size: ModelSize, condition: str = "none", device: str | torch.device = "cpu",
                 seed: int = 0) -> tuple[VQVAE, VideoGPT]:
    """A VQ-VAE and a prior of `size` with random weights (eval mode). fc_out and the conditional norms,
    which the constructor zeroes, get small noise so the logits are not all equal."""
    torch.manual_seed(seed)
    vqvae = VQVAE(VQVAEConfig(**size.vqvae))
    prior = VideoGPT.for_vqvae(vqvae, **prior_kwargs(size, condition))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in prior.named_parameters():
            if name.startswith("fc_out") or name.endswith((".w.weight", ".wb.weight")):
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.02)
    return vqvae.to(device).eval(), prior.to(device).eval()


def random_conditions(prior: VideoGPT, batch: int, device, n_frames: int | None = None,
                      seed: int = 0) -> dict[str, torch.Tensor]:
    """Tensor inputs (frames / labels / actions) that `prior` needs, for timing."""
    cfg: VideoGPTConfig = prior.config
    generator = torch.Generator().manual_seed(seed)
    inputs = {}
    if cfg.n_cond_frames:
        inputs["frames"] = (torch.rand(batch, 3, cfg.n_cond_frames, cfg.resolution, cfg.resolution,
                                       generator=generator) - 0.5).to(device)
    if cfg.n_classes:
        inputs["labels"] = torch.randint(0, cfg.n_classes, (batch,), generator=generator).to(device)
    if cfg.action_dim:
        inputs["actions"] = torch.randn(batch, n_frames or cfg.sequence_length, cfg.action_dim,
                                        generator=generator).to(device)
    return inputs


# ---- machine -----------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: torch.device) -> dict[str, Any]:
    info = dict(cpu=cpu_model(), cores=os.cpu_count(), torch=torch.__version__, threads=torch.get_num_threads(),
                python=platform.python_version(), platform=platform.platform(), device=str(device))
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(device if device.type == "cuda" else 0)
    else:
        info["gpu"] = None
    return info


def command_line(module: str) -> str:
    return shlex.join(["python", "-m", module, *sys.argv[1:]])


def setup_device(device: str | None, threads: int | None) -> torch.device:
    if threads is not None:
        torch.set_num_threads(threads)
    resolved = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA GPU")
    return resolved


def add_common_arguments(parser: argparse.ArgumentParser, default_sizes: str = "demo,bair") -> None:
    parser.add_argument("--sizes", type=size_names, default=size_names(default_sizes),
                        help=f"comma-separated model sizes from {', '.join(SIZES)} (default {default_sizes})")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT.json", help="also write the JSON here")


AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, amp: str):
    """torch.autocast for --amp bf16 / fp16, or nothing for --amp none."""
    dtype = AMP_DTYPES[amp]
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


# ---- timing ------------------------------------------------------------------------------------------


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timing:
    median_s: float
    min_s: float
    runs: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(median_s=self.median_s, min_s=self.min_s, runs=len(self.runs))


def measure(run: Callable[[], Any], device: torch.device, warmup: int = 1, repeats: int = 5,
            budget_s: float | None = None, slow_s: float | None = None) -> Timing:
    """Median wall time of `run()` after `warmup` untimed calls, synchronising a GPU around each call.

    With `budget_s`, stops repeating once the timed calls have used it (always at least one). With
    `slow_s`, a first warmup call slower than that counts as the measurement: one-time costs are then
    negligible, and a long call is not worth running twice.
    """
    runs: list[float] = []
    for i in range(warmup):
        synchronize(device)
        start = time.perf_counter()
        run()
        synchronize(device)
        elapsed = time.perf_counter() - start
        if i == 0 and slow_s is not None and elapsed >= slow_s:
            return Timing(elapsed, elapsed, [elapsed])
    while len(runs) < repeats:
        start = time.perf_counter()
        run()
        synchronize(device)
        runs.append(time.perf_counter() - start)
        if budget_s is not None and sum(runs) >= budget_s:
            break
    return Timing(statistics.median(runs), min(runs), runs)


# ---- report ------------------------------------------------------------------------------------------


def format_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value == 0:
            return "0"
        magnitude = abs(value)
        return f"{value:.0f}" if magnitude >= 100 else f"{value:.1f}" if magnitude >= 10 else f"{value:.3g}"
    return str(value)


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """rows of dicts -> an aligned text table; columns are (key, heading)."""
    cells = [[heading for _, heading in columns]]
    cells += [[format_value(row.get(key)) for key, _ in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = ["  ".join(cell.rjust(width) if i else cell.ljust(width) for i, (cell, width) in
                       enumerate(zip(line, widths))) for line in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def report(title: str, module: str, device: torch.device, rows: list[dict[str, Any]],
           columns: Sequence[tuple[str, str]], notes: Sequence[str], json_path: Path | None,
           extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Print the machine, the command, a table and notes; then the whole result as JSON (also to json_path)."""
    machine = machine_info(device)
    command = command_line(module)
    print(f"# {title}")
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, {machine['threads']} torch threads, "
          f"torch {machine['torch']}, device {machine['device']}" + (f" ({machine['gpu']})" if machine["gpu"] else ""))
    print(f"command: {command}\n")
    print(format_table(rows, columns))
    if notes:
        print()
        for note in notes:
            print(f"- {note}")
    result = dict(benchmark=title, machine=machine, command=command, notes=list(notes), results=rows,
                  **(extra or {}))
    text = json.dumps(result, indent=2, default=str)
    print("\n" + text)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(text + "\n")
    return result

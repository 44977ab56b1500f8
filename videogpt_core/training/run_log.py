"""What a run reports: scalars into TensorBoard (RUN_DIR/logs) and RUN_DIR/metrics.jsonl, the per-step
scalars between two log lines, and the time per 1,000 steps measured at the start."""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch

from videogpt_core.io.atomic_files import write_text_atomic
from videogpt_core.training.run_folder import LOG_DIR, METRICS_FILE


def truncate_metrics(path: Path, last_step: int) -> None:
    """Keep the metrics.jsonl records up to last_step (atomically)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= last_step:
                kept.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            pass  # a line cut off by a kill
    write_text_atomic(path, "".join(line + "\n" for line in kept))


class RunLog:
    """The main process's writer of logged scalars (other processes get one that writes nothing).
    A resumed run first drops what was logged after its checkpoint: those steps are about to run again."""

    def __init__(self, run_dir: Path, is_main: bool, resumed_at: int | None):
        self.run_dir = run_dir
        self.writer = None
        if is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / LOG_DIR),
                                        purge_step=resumed_at + 1 if resumed_at is not None else None)
            if resumed_at is not None:
                truncate_metrics(run_dir / METRICS_FILE, resumed_at)

    def log(self, split: str, step: int, scalars: dict[str, float]) -> None:
        if self.writer is None:
            return
        for name, value in scalars.items():
            self.writer.add_scalar(f"{split}/{name}", value, step)
        with open(self.run_dir / METRICS_FILE, "a") as f:
            f.write(json.dumps({"step": step, "split": split, **scalars}) + "\n")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class StepWindow:
    """The per-step scalars since the last log line and the training time they took (time spent
    validating, drawing media or saving is excluded)."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.steps: list[dict[str, torch.Tensor]] = []
        self.start = time.perf_counter()
        self.excluded = 0.0

    def add(self, scalars: dict[str, torch.Tensor]) -> None:
        self.steps.append(scalars)

    def stacked(self) -> tuple[list[str], torch.Tensor]:
        """The scalar names and a (steps, names) tensor."""
        names = sorted(self.steps[0])
        return names, torch.stack([torch.stack([s[n] for n in names]) for s in self.steps])

    def seconds(self) -> float:
        return max(1e-9, time.perf_counter() - self.start - self.excluded)


def _duration(seconds: float) -> str:
    minutes = seconds / 60
    if minutes < 1:
        return f"{seconds:.0f} s"
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def estimate_message(step_seconds: list[float], steps_left: int) -> str:
    """The time per 1,000 steps from the first steps' durations (the first one, which allocates and
    initialises, is left out when there are others)."""
    timed = step_seconds[1:] if len(step_seconds) > 1 else step_seconds
    per_step = statistics.median(timed)
    first = len(step_seconds) - len(timed) + 1
    message = (f"speed: {per_step:.2f} s per step (median of steps {first}-{len(step_seconds)} of this run, "
               f"data loading included): about {_duration(1000 * per_step)} per 1,000 steps")
    if steps_left > 0:
        plural = "s" if steps_left > 1 else ""
        message += f", {_duration(steps_left * per_step)} for the {steps_left:,} step{plural} left"
    return message


class SpeedEstimate:
    """Times the first `n_steps` steps of a run, then has the estimate message once."""

    def __init__(self, n_steps: int):
        self.n_steps = n_steps
        self.step_seconds: list[float] = []

    def record(self, seconds: float, steps_left: int) -> str | None:
        if len(self.step_seconds) >= self.n_steps:
            return None
        self.step_seconds.append(seconds)
        return estimate_message(self.step_seconds, steps_left) if len(self.step_seconds) == self.n_steps else None

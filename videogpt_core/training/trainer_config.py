"""The trainer's settings (TrainerConfig) and what a run returns (TrainResult)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

MIXED_PRECISION_MODES = ("auto", "no", "bf16", "fp16")


@dataclass
class TrainerConfig:
    """Everything the trainer needs besides the task and the data. batch_size is per process:
    an optimizer step sees batch_size * processes * grad_accum samples. batch_size None is for the
    stage builders: they fill it from the size preset (or, on resume, from the checkpoint)."""

    out_dir: str
    steps: int = 100_000
    batch_size: int | None = None
    lr: float = 3e-4
    warmup: int = 1000  # linear warmup steps, then a cosine decay to min_lr_ratio * lr at `steps`
    min_lr_ratio: float = 0.0
    weight_decay: float = 0.0  # AdamW; applied to matrices / kernels only, never to biases or gains
    grad_accum: int = 1
    clip_grad: float = 1.0  # max global gradient norm; 0 disables clipping
    mixed_precision: str = "auto"  # auto (bf16 on a GPU that has it, else no) | no | bf16 | fp16
    compile: bool = False  # torch.compile the training forward; off: no CPU speed-up measured yet (BENCHMARKS.md)
    num_workers: int = 2
    seed: int = 0
    log_every: int = 50
    val_every: int = 1000
    val_batches: int = 16  # per validation, per process
    save_every: int = 1000
    sample_every: int = 5000
    resume: bool = False
    progress: bool = True

    def __post_init__(self):
        positive = ("steps", "batch_size", "grad_accum", "log_every", "val_every", "save_every", "sample_every",
                    "val_batches")
        for name in positive:
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
        if self.lr <= 0:
            raise ValueError(f"--lr must be > 0, got {self.lr}")
        if self.warmup < 0 or self.clip_grad < 0 or self.num_workers < 0 or self.weight_decay < 0:
            raise ValueError("--warmup, --clip-grad, --num-workers and --weight-decay must be >= 0")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"--min-lr-ratio must lie in [0, 1], got {self.min_lr_ratio}")
        if self.mixed_precision not in MIXED_PRECISION_MODES:
            raise ValueError(f"--mixed-precision must be auto, no, bf16 or fp16, got {self.mixed_precision!r}")


@dataclass
class TrainResult:
    run_dir: Path
    step: int  # the step reached
    first_step: int  # the step this call started from (> 0 after a resume)
    losses: list[float] = field(default_factory=list)  # per optimizer step of this call, mean over processes
    interrupted: bool = False
    signal: int | None = None  # the signal that stopped the run, if one did

    @property
    def exit_code(self) -> int:
        """The command's exit status: 128 + the signal that stopped the run (the shell's convention), else 0."""
        return 128 + self.signal if self.interrupted and self.signal else 0

"""One trainer for both stages (the VQ-VAE on videos, the prior on cached codes) on Hugging Face Accelerate:
CPU, one GPU or many (`accelerate launch` / `torchrun`), mixed precision, atomic checkpoints, exact resume."""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import io
import json
import math
import os
import random
import shutil
import signal
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset, Sampler

from videogpt_core.training_sizes import SIZES, default_size, preset, preset_help

CHECKPOINT_DIR = "checkpoint"  # RUN_DIR/checkpoint: the full trainer state
MODEL_DIR = "model"  # RUN_DIR/model: the exported save_pretrained folder(s)
LOG_DIR = "logs"  # RUN_DIR/logs: TensorBoard event files
METRICS_FILE = "metrics.jsonl"  # RUN_DIR/metrics.jsonl: every logged scalar, one JSON object per line
MANIFEST_NAME = "manifest.json"  # written last: a checkpoint folder without it is incomplete
MODEL_WEIGHTS = "model.safetensors"
OPTIMIZER_STATE = "optimizer.pt"
TRAINER_STATE = "trainer_state.json"
MEDIA_VIDEOS = 4  # videos shown per TensorBoard media entry
ESTIMATE_STEPS = 5  # the time per 1,000 steps is printed after this many steps


# =============================================================================================
# Configuration and the task interface


@dataclass
class TrainerConfig:
    """Everything the trainer needs besides the task and the data. batch_size is per process:
    an optimizer step sees batch_size * processes * grad_accum samples."""

    out_dir: str
    steps: int = 100_000
    batch_size: int = 16
    lr: float = 3e-4
    warmup: int = 1000  # linear warmup steps, then a cosine decay to min_lr_ratio * lr at `steps`
    min_lr_ratio: float = 0.0
    weight_decay: float = 0.0  # AdamW; applied to matrices / kernels only, never to biases or gains
    grad_accum: int = 1
    clip_grad: float = 1.0  # max global gradient norm; 0 disables clipping
    mixed_precision: str = "auto"  # auto (bf16 on a GPU that has it, else no) | no | bf16 | fp16
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
            if int(getattr(self, name)) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"--lr must be > 0, got {self.lr}")
        if self.warmup < 0 or self.clip_grad < 0 or self.num_workers < 0 or self.weight_decay < 0:
            raise ValueError("--warmup, --clip-grad, --num-workers and --weight-decay must be >= 0")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"--min-lr-ratio must lie in [0, 1], got {self.min_lr_ratio}")
        if self.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            raise ValueError(f"--mixed-precision must be auto, no, bf16 or fp16, got {self.mixed_precision!r}")


class TrainingTask:
    """What the trainer knows about a model: how to get a loss from a batch, how to export it,
    and (optionally) what to show in TensorBoard. Subclass it for a new kind of model."""

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


class VQVAETask(TrainingTask):
    """Stage 1: the VQ-VAE reconstructs videos; batches hold "video" (B, 3, T, H, W) in [-0.5, 0.5]."""

    kind = "vqvae"

    def loss(self, model, batch):
        return model(batch["video"])

    def describe(self):
        from videogpt_core.config import config_to_dict
        return {"kind": self.kind, "vqvae_config": config_to_dict(self.model.config)}

    def export(self, model, directory):
        model.save_pretrained(directory)

    def prepare_model(self, model, distributed, device):
        # BatchNorm statistics over the global batch, as the reference trains; CPU (gloo) has no SyncBatchNorm.
        if distributed and device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return model

    def eval_metrics(self, model, batch, out):
        video, recon = batch["video"].float(), out["recon"].float().clamp(-0.5, 0.5)
        mse = (recon - video).pow(2).mean(dim=(1, 3, 4))  # (B, T): PSNR per frame, as metrics.psnr
        return {"psnr": (10 * torch.log10(1.0 / mse.clamp_min(1e-10))).mean()}

    @torch.no_grad()
    def log_media(self, model, batch, writer, step):
        video = batch["video"][:MEDIA_VIDEOS]
        recon = model(video)["recon"].float().clamp(-0.5, 0.5)
        side_by_side = torch.cat([video.float(), recon], dim=-1)  # original | reconstruction, (B, 3, T, H, 2W)
        write_video_summary(writer, "reconstruction", side_by_side, step)


class PriorTask(TrainingTask):
    """Stage 2: the prior models cached codes; batches hold "codes" (B, t, h, w) and, when the prior
    is conditional, "frames" (B, 3, K, H, W), "label" (B,) and / or "actions" (B, T, A)."""

    kind = "prior"

    def __init__(self, model: nn.Module, vqvae: nn.Module, vqvae_path: str | None = None):
        super().__init__(model)
        self.vqvae = vqvae.eval()  # frozen: only exported beside the prior and used for media
        self.vqvae_path = vqvae_path

    def _conditions(self, model, batch) -> dict[str, torch.Tensor | None]:
        config = model.config
        return dict(
            frames=batch.get("frames") if config.n_cond_frames else None,
            labels=batch.get("label") if config.n_classes else None,
            actions=batch.get("actions") if config.action_dim else None,
        )

    def loss(self, model, batch):
        return model.loss(batch["codes"], **self._conditions(model, batch))

    def describe(self):
        from videogpt_core.config import config_to_dict
        return {"kind": self.kind, "prior_config": config_to_dict(self.model.config), "vqvae": self.vqvae_path}

    def export(self, model, directory):
        from videogpt_core.checkpoints import save_pipeline
        save_pipeline(directory, self.vqvae, model)

    @torch.no_grad()
    def log_media(self, model, batch, writer, step):
        # Teacher-forced greedy predictions, decoded beside the true codes: cheap (one forward pass)
        # and shows what the prior has learned without a full autoregressive sample.
        codes = batch["codes"][:MEDIA_VIDEOS]
        conditions = {k: (v[:MEDIA_VIDEOS] if v is not None else None)
                      for k, v in self._conditions(model, batch).items()}
        predicted = model(codes, **conditions).argmax(-1)
        self.vqvae.to(codes.device)
        truth = self.vqvae.decode(codes).float().clamp(-0.5, 0.5)
        guess = self.vqvae.decode(predicted).float().clamp(-0.5, 0.5)
        write_video_summary(writer, "codes_vs_teacher_forced_prediction", torch.cat([truth, guess], dim=-1), step)


def write_video_summary(writer, tag: str, videos: torch.Tensor, step: int, fps: int = 4) -> None:
    """Log videos (B, 3, T, H, W) in [-0.5, 0.5] to TensorBoard as one animated GIF (a grid row).

    SummaryWriter.add_video needs `moviepy.editor`, which moviepy 2 removed (it then logs nothing),
    so the GIF is encoded with Pillow and written as the same image summary add_video produces."""
    from PIL import Image
    from torch.utils.tensorboard.summary import Summary

    frames = ((videos.detach().float().cpu() + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
    frames = torch.cat(list(frames), dim=-1)  # videos side by side: (3, T, H, B*W)
    frames = frames.permute(1, 2, 3, 0).numpy()  # (T, H, W, 3)
    images = [Image.fromarray(frame) for frame in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    height, width = frames.shape[1:3]
    image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=buffer.getvalue())
    writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)


# =============================================================================================
# Data order: a function of (seed, epoch, position), so a resumed run sees the same batches


def _mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers (numpy's SeedSequence hashing)."""
    state = np.random.SeedSequence([int(p) & 0xFFFFFFFFFFFFFFFF for p in parts]).generate_state(2, np.uint64)
    return int(state[0] >> np.uint64(1))


class EpochBatchSampler(Sampler):
    """Batches of one process for one epoch: the epoch's permutation depends only on (seed, epoch),
    each global batch of batch_size * world_size items is split between the processes, and
    iteration can start at any batch (to skip what a resumed run already consumed).

    Yields lists of (dataset index, item seed): the seed makes any per-item randomness of the
    dataset (random clip windows, augmentation) a function of the position in the epoch too."""

    def __init__(self, n_items: int, batch_size: int, seed: int, epoch: int, rank: int = 0,
                 world_size: int = 1, start_batch: int = 0):
        self.n_items, self.batch_size, self.seed, self.epoch = n_items, batch_size, seed, epoch
        self.rank, self.world_size, self.start_batch = rank, world_size, start_batch
        self.batches_per_epoch = n_items // (batch_size * world_size)

    def __len__(self) -> int:
        return max(0, self.batches_per_epoch - self.start_batch)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n_items)
        item_seed_base = _mix_seed(self.seed, self.epoch, 0x5EED)
        global_batch = self.batch_size * self.world_size
        for b in range(self.start_batch, self.batches_per_epoch):
            first = b * global_batch + self.rank * self.batch_size
            yield [(int(order[p]), (item_seed_base + p) % 2**63) for p in range(first, first + self.batch_size)]


class SeededItems(Dataset):
    """Wraps a data set so that item (index, seed) is produced with python / numpy / torch CPU RNGs
    seeded by `seed`, and the caller's RNG streams are left as they were."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        index, seed = key
        py_state, np_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
        try:
            random.seed(seed)
            np.random.seed(seed % 2**32)
            torch.default_generator.manual_seed(seed)  # CPU only: never touches the GPU's dropout stream
            return self.dataset[index]
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
            torch.set_rng_state(torch_state)


_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _worker_init(_worker_id: int) -> None:
    # Ctrl-C, `timeout` and schedulers signal the whole process group: let the main process save a
    # checkpoint (it shuts its workers down itself) instead of having its workers die under it.
    # Ignoring a blocked signal discards it if it is pending (see _start_workers).
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)


def _start_workers(loader: DataLoader) -> Iterator:
    """iter(loader), with its worker processes forked while SIGINT / SIGTERM are blocked.

    A worker installs torch's SIGTERM handler (which kills it) before its worker_init_fn runs; a group
    signal in between would kill it under the main process. Forked with the signals blocked, the
    worker holds them pending until _worker_init ignores them; the main process gets its own when
    the mask is restored here."""
    if not loader.num_workers:
        return iter(loader)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        return iter(loader)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


# =============================================================================================
# RNG state and atomic checkpoint files


def _capture_rng_states() -> dict[str, Any]:
    np_state = np.random.get_state()
    states = {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _restore_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    n = states["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


@contextlib.contextmanager
def _rng_preserved():
    """Run something (validation, media) without shifting the training run's random streams."""
    states = _capture_rng_states()
    try:
        yield
    finally:
        _restore_rng_states(states)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    if not hasattr(os, "O_DIRECTORY"):  # Windows cannot open folders; its renames are durable enough
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _rename(source: Path, target: Path) -> None:
    os.replace(source, target)


def _promote_directory(staged: Path, final: Path) -> None:
    """Make the complete folder `staged` the new `final`, keeping the old `final` (as FINAL.prev)
    until the new one is in place: at any moment one complete folder exists."""
    previous = final.with_name(final.name + ".prev")
    if final.exists():
        if previous.exists():  # a finished earlier save left it: `final` is complete, so it is redundant
            shutil.rmtree(previous)
        _rename(final, previous)
    _rename(staged, final)
    _fsync_dir(final.parent)
    shutil.rmtree(previous, ignore_errors=True)


def _write_trainer_state(directory: Path, state: dict[str, Any]) -> None:
    path = directory / TRAINER_STATE
    path.write_text(json.dumps(state, indent=2) + "\n")
    _fsync_file(path)


def _write_manifest(directory: Path, step: int) -> None:
    files = {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)}
             for p in sorted(directory.iterdir()) if p.is_file() and p.name != MANIFEST_NAME}
    path = directory / MANIFEST_NAME
    path.write_text(json.dumps({"step": step, "files": files}, indent=2) + "\n")
    _fsync_file(path)


def find_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The checkpoint folder of a run, or None: RUN_DIR/checkpoint, or RUN_DIR/checkpoint.prev when
    a save was cut off between its two renames. A path that is itself a checkpoint is returned as is."""
    run_dir = Path(run_dir)
    if (run_dir / MANIFEST_NAME).is_file():
        return run_dir
    for name in (CHECKPOINT_DIR, CHECKPOINT_DIR + ".prev"):
        if (run_dir / name).is_dir():
            return run_dir / name
    return None


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Verify and read a checkpoint (a run folder or its checkpoint folder).

    Returns {"path", "state" (trainer_state.json), "model_path", "optimizer" (state dict),
    "rng" ({rank: states})}. Raises FileNotFoundError when there is none and a ValueError naming
    the file when one is incomplete or corrupt."""
    directory = find_checkpoint(path)
    if directory is None:
        raise FileNotFoundError(f"no checkpoint in {path} (expected {Path(path) / CHECKPOINT_DIR})")
    manifest_path = directory / MANIFEST_NAME
    if not manifest_path.is_file():
        raise ValueError(f"{manifest_path}: missing, so the checkpoint in {directory} is incomplete; "
                         "delete it (or resume from a copy of an earlier one)")
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{manifest_path}: corrupt checkpoint manifest ({error})") from None
    for name, expected in files.items():
        file = directory / name
        if not file.is_file():
            raise ValueError(f"{file}: missing from the checkpoint (listed in its manifest)")
        if file.stat().st_size != expected["bytes"] or _sha256(file) != expected["sha256"]:
            raise ValueError(f"{file}: corrupt (its size or checksum differs from {MANIFEST_NAME}); "
                             "the checkpoint cannot be resumed")
    for required in (TRAINER_STATE, MODEL_WEIGHTS, OPTIMIZER_STATE):
        if required not in files:
            raise ValueError(f"{directory / required}: missing from the checkpoint")

    def read(name: str, reader):
        try:
            return reader(directory / name)
        except Exception as error:  # any parse failure of a file that passed its checksum
            raise ValueError(f"{directory / name}: unreadable checkpoint file ({error})") from None

    state = read(TRAINER_STATE, lambda p: json.loads(p.read_text()))
    optimizer = read(OPTIMIZER_STATE, lambda p: torch.load(p, map_location="cpu", weights_only=True))
    rng = {}
    for name in files:
        if name.startswith("rng_state_") and name.endswith(".pt"):
            rank = int(name[len("rng_state_"):-len(".pt")])
            rng[rank] = read(name, lambda p: torch.load(p, map_location="cpu", weights_only=True))
    return {"path": directory, "state": state, "model_path": directory / MODEL_WEIGHTS,
            "optimizer": optimizer, "rng": rng}


# =============================================================================================
# The trainer


def lr_multiplier(step: int, warmup: int, total: int, min_ratio: float = 0.0) -> float:
    """Linear warmup over `warmup` steps, then a cosine from 1 down to min_ratio at `total`."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def _has_accelerator_device() -> bool:
    return torch.cuda.is_available() or torch.backends.mps.is_available() \
        or (hasattr(torch, "xpu") and torch.xpu.is_available())


def _resolve_mixed_precision(mode: str) -> str:
    if mode == "auto":
        if torch.cuda.is_available():
            return "bf16" if torch.cuda.is_bf16_supported() else "no"
        from videogpt_core.pipeline import cpu_supports_bf16
        # On a CPU with native bf16 matrix instructions bf16 autocast makes both stages' steps faster at the
        # same loss (BENCHMARKS.md); without them it is slower than float32.
        return "bf16" if not _has_accelerator_device() and cpu_supports_bf16() else "no"
    if mode == "fp16" and not torch.cuda.is_available():
        raise ValueError("--mixed-precision fp16 needs a CUDA GPU; use bf16 or no on the CPU")
    return mode


class _LossModule(nn.Module):
    """Routes task.loss through forward(), so DistributedDataParallel sees (and syncs) every step."""

    def __init__(self, task: TrainingTask, model: nn.Module):
        super().__init__()
        self.model = model
        self.task = task

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.task.loss(self.model, batch)


def _scalars(out: dict[str, Any]) -> dict[str, torch.Tensor]:
    return {k: v.detach().float() for k, v in out.items() if isinstance(v, torch.Tensor) and v.dim() == 0}


@dataclass
class TrainResult:
    run_dir: Path
    step: int  # the step reached
    first_step: int  # the step this call started from (> 0 after a resume)
    losses: list[float] = field(default_factory=list)  # per optimizer step of this call, mean over processes
    interrupted: bool = False
    signal: int | None = None  # the signal that stopped the run, if one did


class Trainer:
    """Trains task.model on train_dataset; see TrainerConfig. fit() returns a TrainResult.

    callbacks are called as callback(trainer) after every optimizer step (trainer.step is the
    number of steps done); calling trainer.request_stop() there stops like a SIGINT would."""

    def __init__(self, config: TrainerConfig, task: TrainingTask, train_dataset: Dataset,
                 val_dataset: Dataset | None = None, callbacks: list[Callable[["Trainer"], None]] | None = None):
        self.config = config
        self.task = task
        self.train_dataset = train_dataset
        self.val_dataset = val_dataset
        self.callbacks = list(callbacks or [])
        self.run_dir = Path(config.out_dir)
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self._stop_signal: int | None = None
        self._stop_requested = False

    # ---- public controls -------------------------------------------------------------------------

    def request_stop(self, signum: int | None = None) -> None:
        """Stop after the current step, saving a checkpoint first."""
        self._stop_requested = True
        if signum is not None:
            self._stop_signal = signum

    # ---- setup -----------------------------------------------------------------------------------

    def _make_accelerator(self):
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState
        from accelerate.utils import DistributedDataParallelKwargs

        mixed_precision = _resolve_mixed_precision(self.config.mixed_precision)
        state = AcceleratorState._shared_state
        if state and state.get("_mixed_precision", mixed_precision) != mixed_precision \
                and int(os.environ.get("WORLD_SIZE", "1")) == 1:
            # Accelerate keeps one precision per process; a second run in one process (tests,
            # notebooks) may ask for another, which is harmless to reset when nothing is distributed.
            AcceleratorState._reset_state(reset_partial_state=False)
        # Accelerate takes the multi-process CPU (gloo) path of torchrun / accelerate launch only when
        # told cpu=True; without a GPU-type device that is what we want anyway.
        return Accelerator(
            cpu=not _has_accelerator_device(),
            mixed_precision=mixed_precision,
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=self.task.find_unused_parameters)],
        )

    def _check_run_dir(self) -> dict[str, Any] | None:
        existing = find_checkpoint(self.run_dir)
        if self.config.resume:
            if existing is None:
                raise FileNotFoundError(f"--resume: no checkpoint in {self.run_dir} (expected "
                                        f"{self.run_dir / CHECKPOINT_DIR}); drop --resume to start a new run")
            return load_checkpoint(self.run_dir)
        if existing is not None:
            raise ValueError(f"{existing} already exists: pass --resume to continue that run, "
                             "or choose another --out")
        return None

    def _optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        decay, no_decay = [], []
        for parameter in model.parameters():
            if parameter.requires_grad:
                (decay if parameter.dim() >= 2 else no_decay).append(parameter)
        groups = [{"params": decay, "weight_decay": self.config.weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
        return torch.optim.AdamW([g for g in groups if g["params"]], lr=self.config.lr)

    # ---- data ------------------------------------------------------------------------------------

    def _loader(self, dataset: Dataset, batch_sampler, generator_seed: int) -> DataLoader:
        workers = self.config.num_workers
        return DataLoader(
            SeededItems(dataset), batch_sampler=batch_sampler, num_workers=workers,
            pin_memory=self.device.type == "cuda", worker_init_fn=_worker_init if workers else None,
            # Its own generator: creating an iterator must not draw from the training RNG.
            generator=torch.Generator().manual_seed(generator_seed),
        )

    def _train_batches(self) -> Iterator[dict[str, torch.Tensor]]:
        """Batches from the saved position on, forever; self.epoch / batch_in_epoch track the position."""
        while True:
            sampler = EpochBatchSampler(len(self.train_dataset), self.config.batch_size, self.config.seed,
                                        self.epoch, self.rank, self.world_size, start_batch=self.batch_in_epoch)
            loader = self._loader(self.train_dataset, sampler, _mix_seed(self.config.seed, self.epoch, self.rank))
            for batch in _start_workers(loader):
                self.batch_in_epoch += 1
                yield self._to_device(batch)
            self.epoch += 1
            self.batch_in_epoch = 0

    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {k: v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                for k, v in batch.items()}

    def _val_keys(self) -> list[list[tuple[int, int]]]:
        """This process's validation batches: a fixed random subset, the same at every validation."""
        n_per_process = len(self.val_dataset) // self.world_size
        n_per_process = min(n_per_process, self.config.val_batches * self.config.batch_size)
        order = np.random.default_rng([self.config.seed, 0xE7A1]).permutation(len(self.val_dataset))
        mine = order[self.rank * n_per_process:(self.rank + 1) * n_per_process]
        keys = [(int(i), _mix_seed(self.config.seed, 0xE7A1, int(i))) for i in mine]
        size = self.config.batch_size
        return [keys[i:i + size] for i in range(0, len(keys), size)]

    # ---- checkpoints -----------------------------------------------------------------------------

    def _save_checkpoint(self) -> None:
        """Every process writes its RNG state; the main one writes the rest, then renames into place."""
        from safetensors.torch import save_model

        accelerator = self.accelerator
        staged = self.run_dir / f".{CHECKPOINT_DIR}.tmp"
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            shutil.rmtree(staged, ignore_errors=True)  # left by a save that was cut off
            staged.mkdir(parents=True)
        accelerator.wait_for_everyone()
        rng_path = staged / f"rng_state_{self.rank}.pt"
        # Validation and media run with the RNG state restored afterwards, so this is the state at the
        # step boundary, exactly what the uninterrupted run continues from.
        torch.save(_capture_rng_states(), rng_path)
        _fsync_file(rng_path)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            model = self._unwrapped_model()
            save_model(model, str(staged / MODEL_WEIGHTS))
            _fsync_file(staged / MODEL_WEIGHTS)
            torch.save(self.optimizer.state_dict(), staged / OPTIMIZER_STATE)
            _fsync_file(staged / OPTIMIZER_STATE)
            _write_trainer_state(staged, {
                "step": self.step,
                "epoch": self.epoch,
                "batch_in_epoch": self.batch_in_epoch,
                "world_size": self.world_size,
                "scheduler": self.scheduler.state_dict(),
                "task": self.task.describe(),
                "trainer_config": dataclasses.asdict(self.config),
            })
            _write_manifest(staged, self.step)
            _fsync_dir(staged)
            _promote_directory(staged, self.run_dir / CHECKPOINT_DIR)
            self._export()
        accelerator.wait_for_everyone()

    def _export(self) -> None:
        staged = self.run_dir / f".{MODEL_DIR}.tmp"
        shutil.rmtree(staged, ignore_errors=True)
        staged.mkdir(parents=True)
        self.task.export(self._unwrapped_model(), staged)
        _fsync_dir(staged)
        _promote_directory(staged, self.run_dir / MODEL_DIR)

    def _restore(self, checkpoint: dict[str, Any]) -> None:
        """Trainer state from a verified checkpoint (the model weights were loaded before prepare)."""
        state = checkpoint["state"]
        path = checkpoint["path"]
        try:
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        except (KeyError, ValueError, RuntimeError) as error:
            raise ValueError(f"{path}: does not fit this run ({error}); was it written by another "
                             "model or optimizer setup?") from None
        if state.get("world_size") != self.world_size:
            self._print(f"note: the checkpoint was written by {state.get('world_size')} processes, this run "
                        f"has {self.world_size}: the data order and random streams differ from an "
                        "uninterrupted run")
        rng = checkpoint["rng"].get(self.rank)
        if rng is None:
            _seed_everything(_mix_seed(self.config.seed, self.rank, self.step))
        else:
            _restore_rng_states(rng)

    def _unwrapped_model(self) -> nn.Module:
        return self.accelerator.unwrap_model(self.wrapped).model

    # ---- logging ---------------------------------------------------------------------------------

    def _print(self, message: str) -> None:
        if self.accelerator.is_main_process:
            (self.bar.write if self.bar is not None else print)(message, file=sys.stderr)

    def _log(self, split: str, scalars: dict[str, float]) -> None:
        if not self.accelerator.is_main_process:
            return
        for name, value in scalars.items():
            self.writer.add_scalar(f"{split}/{name}", value, self.step)
        with open(self.run_dir / METRICS_FILE, "a") as f:
            f.write(json.dumps({"step": self.step, "split": split, **scalars}) + "\n")

    def _flush_train_log(self) -> None:
        """Average the window's per-step scalars over steps and processes, then log them."""
        names = sorted(self._window[0])
        per_step = torch.stack([torch.stack([s[n] for n in names]) for s in self._window])  # (steps, names)
        per_step = self.accelerator.reduce(per_step, "mean") if self.world_size > 1 else per_step
        per_step = per_step.cpu().double()
        losses = per_step[:, names.index("loss")].tolist()
        if not all(math.isfinite(x) for x in losses):
            raise ValueError(
                f"the loss became {losses[-1]} by step {self.step}: lower --lr, keep --clip-grad on, or try "
                f"--mixed-precision no; the last good checkpoint is in {self.run_dir / CHECKPOINT_DIR}")
        self._losses.extend(losses)
        scalars = dict(zip(names, per_step.mean(0).tolist()))
        elapsed = max(1e-9, time.perf_counter() - self._window_start - self._window_excluded)
        samples = len(self._window) * self.config.batch_size * self.world_size * self.config.grad_accum
        scalars["samples_per_sec"] = samples / elapsed
        scalars["lr"] = self.scheduler.get_last_lr()[0]
        scalars["epoch"] = self.epoch + self.batch_in_epoch / max(1, self._batches_per_epoch)
        self._log("train", scalars)
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{scalars['loss']:.4f}", samples_per_sec=f"{scalars['samples_per_sec']:.1f}")
        self._window = []
        self._window_start = time.perf_counter()
        self._window_excluded = 0.0

    @contextlib.contextmanager
    def _off_the_clock(self):
        """Validation, media and saving: kept out of throughput and out of the training RNG streams."""
        start = time.perf_counter()
        was_training = self.wrapped.training
        try:
            with _rng_preserved():
                yield
        finally:
            self.wrapped.train(was_training)
            self._window_excluded += time.perf_counter() - start

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean loss (and task metrics) over the validation subset, across processes; logged as val/*."""
        model = self._unwrapped_model()
        model.eval()
        totals: dict[str, torch.Tensor] = {}
        count = torch.zeros((), device=self.device)
        for keys in self._val_keys():
            batch = self._to_device(torch.utils.data.default_collate([SeededItems(self.val_dataset)[k] for k in keys]))
            with self.accelerator.autocast():
                out = self.task.loss(model, batch)
                scalars = {**_scalars(out), **_scalars(self.task.eval_metrics(model, batch, out))}
            for name, value in scalars.items():
                totals[name] = totals.get(name, torch.zeros((), device=self.device)) + value * len(keys)
            count += len(keys)
        names = sorted(totals)
        vector = torch.stack([totals[n] for n in names] + [count])
        if self.world_size > 1:
            vector = self.accelerator.reduce(vector, "sum")
        vector = vector.double().cpu()
        result = {n: float(v / vector[-1]) for n, v in zip(names, vector[:-1])}
        self._log("val", result)
        self._print(f"step {self.step}: validation " + ", ".join(f"{k} {v:.4g}" for k, v in result.items()))
        return result

    def _media_batch(self) -> dict[str, torch.Tensor]:
        dataset = self.val_dataset if self.val_dataset is not None else self.train_dataset
        items = [SeededItems(dataset)[(i, _mix_seed(self.config.seed, 0x3ED1A, i))]
                 for i in range(min(MEDIA_VIDEOS, len(dataset)))]
        return self._to_device(torch.utils.data.default_collate(items))

    # ---- the loop --------------------------------------------------------------------------------

    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}  # signals can only be caught on the main thread (e.g. not inside a web server)
        previous = {}

        def handler(signum, frame):
            self.request_stop(signum)
            # A second signal acts as usual (e.g. a second Ctrl-C kills): the checkpoints are atomic.
            for sig, old in previous.items():
                signal.signal(sig, old)

        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
        return previous

    def _should_stop(self) -> bool:
        stop = self._stop_requested
        if self.world_size > 1:  # a signal may reach one process only; all must stop at the same step
            flag = torch.tensor([1.0 if stop else 0.0], device=self.device)
            stop = bool(self.accelerator.reduce(flag, "sum").item() > 0)
        return stop

    def fit(self) -> TrainResult:
        config = self.config
        self.accelerator = accelerator = self._make_accelerator()
        self.device = accelerator.device
        self.rank, self.world_size = accelerator.process_index, accelerator.num_processes
        self.bar = None
        checkpoint = self._check_run_dir()
        global_batch = config.batch_size * self.world_size
        self._batches_per_epoch = len(self.train_dataset) // global_batch
        if self._batches_per_epoch == 0:
            raise ValueError(f"the training data has {len(self.train_dataset)} items, fewer than one batch of "
                             f"{global_batch} (--batch-size {config.batch_size} x {self.world_size} processes); "
                             "use a smaller --batch-size or more data")
        if accelerator.is_main_process:
            self.run_dir.mkdir(parents=True, exist_ok=True)

        model = self.task.model
        if checkpoint is not None:  # weights before prepare, so DDP starts every process from them
            from safetensors.torch import load_model
            try:
                load_model(model, str(checkpoint["model_path"]), strict=True)
            except Exception as error:
                raise ValueError(f"{checkpoint['model_path']}: does not match the model ({error})") from None
        model = self.task.prepare_model(model, self.world_size > 1, self.device)
        self.task.model = model
        optimizer = self._optimizer(model)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_multiplier(s, config.warmup, config.steps, config.min_lr_ratio))
        self.wrapped, self.optimizer = accelerator.prepare(_LossModule(self.task, model), optimizer)
        if checkpoint is not None:
            self._restore(checkpoint)
        else:
            _seed_everything(_mix_seed(config.seed, self.rank))
        first_step = self.step
        result = TrainResult(run_dir=self.run_dir, step=self.step, first_step=first_step)
        if self.step >= config.steps:
            self._print(f"{self.run_dir}: already at step {self.step} of {config.steps}; nothing to do "
                        "(raise --steps to train further)")
            return result

        from torch.utils.tensorboard import SummaryWriter
        if accelerator.is_main_process:
            # On resume, drop what was logged after the checkpoint: those steps are about to run again.
            self.writer = SummaryWriter(str(self.run_dir / LOG_DIR),
                                        purge_step=self.step + 1 if checkpoint is not None else None)
            if checkpoint is not None:
                _truncate_metrics(self.run_dir / METRICS_FILE, self.step)
            n_params = sum(p.numel() for p in model.parameters())
            self._print(f"training {self.task.kind} ({n_params / 1e6:.2f}M parameters) on {self.world_size} "
                        f"process(es), {self.device}, precision {accelerator.mixed_precision}: "
                        f"{global_batch * config.grad_accum} samples per step, {self._batches_per_epoch} "
                        f"batches per epoch; logs in {self.run_dir / LOG_DIR}")
        media_batch = self._media_batch() if accelerator.is_main_process else None
        self.bar = None
        if accelerator.is_main_process and config.progress:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=config.steps, initial=self.step, unit="step", dynamic_ncols=True,
                            desc=f"train {self.task.kind}")
        self._losses: list[float] = []
        self._window: list[dict[str, torch.Tensor]] = []
        self._window_start, self._window_excluded = time.perf_counter(), 0.0
        previous_handlers = self._install_signal_handlers()
        batches = self._train_batches()
        self.wrapped.train()
        step_seconds: list[float] = []  # the first steps' durations, for the time estimate
        estimate_after = min(ESTIMATE_STEPS, config.steps - first_step)
        try:
            while self.step < config.steps:
                step_started = time.perf_counter()
                step_scalars: dict[str, torch.Tensor] = {}
                for micro in range(config.grad_accum):
                    batch = next(batches)
                    last = micro == config.grad_accum - 1
                    # Gradients are all-reduced only on the last micro-batch of a step.
                    with contextlib.nullcontext() if last else accelerator.no_sync(self.wrapped):
                        with accelerator.autocast():
                            out = self.wrapped(batch)
                        accelerator.backward(out["loss"] / config.grad_accum)
                    for name, value in _scalars(out).items():
                        step_scalars[name] = step_scalars.get(name, 0) + value / config.grad_accum
                if config.clip_grad > 0:
                    norm = accelerator.clip_grad_norm_(self.wrapped.parameters(), config.clip_grad)
                    if norm is not None:
                        step_scalars["grad_norm"] = norm.detach().float()
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.step += 1
                self._window.append(step_scalars)
                if len(step_seconds) < estimate_after:
                    step_seconds.append(time.perf_counter() - step_started)
                    if len(step_seconds) == estimate_after:
                        self._print(estimate_message(step_seconds, config.steps - self.step))
                if self.bar is not None:
                    self.bar.update(1)
                for callback in self.callbacks:
                    callback(self)
                stop = self._should_stop()
                save = self.step % config.save_every == 0 or self.step == config.steps or stop
                if self.step % config.log_every == 0 or save:  # before a save: never checkpoint a NaN model
                    self._flush_train_log()
                if self.val_dataset is not None and len(self.val_dataset) >= self.world_size \
                        and (self.step % config.val_every == 0 or self.step == config.steps):
                    with self._off_the_clock():
                        self.validate()
                if accelerator.is_main_process and self.step % config.sample_every == 0:
                    with self._off_the_clock():
                        self.task.log_media(self._unwrapped_model().eval(), media_batch, self.writer, self.step)
                if save:
                    with self._off_the_clock():
                        self._save_checkpoint()
                if stop:
                    result.interrupted = True
                    result.signal = self._stop_signal
                    self._print(f"stopped at step {self.step}; checkpoint saved in {self.run_dir / CHECKPOINT_DIR}"
                                f" (continue with --resume)")
                    break
        finally:
            for sig, handler in previous_handlers.items():
                signal.signal(sig, handler)
            if self.bar is not None:
                self.bar.close()
            if accelerator.is_main_process:
                self.writer.close()
        result.step = self.step
        result.losses = self._losses
        if accelerator.is_main_process and not result.interrupted:
            self._print(f"done: step {self.step}; model in {self.run_dir / MODEL_DIR}")
        return result


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


def _truncate_metrics(path: Path, last_step: int) -> None:
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
    staged = path.with_name(path.name + ".tmp")
    staged.write_text("".join(line + "\n" for line in kept))
    os.replace(staged, path)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# =============================================================================================
# The two stages: build task + data from CLI-style arguments


VQVAE_MODEL_ARGS = ("embedding_dim", "n_codes", "n_hiddens", "n_res_layers", "downsample", "sequence_length",
                    "resolution")
PRIOR_MODEL_ARGS = ("hidden_dim", "n_heads", "n_layers", "dropout", "attn_dropout", "cond_frames", "class_cond",
                    "action_cond", "cond_drop_prob", "frame_encoder_widths", "frame_encoder_blocks")


def _as_namespace(args: argparse.Namespace | dict[str, Any], parser: argparse.ArgumentParser) -> argparse.Namespace:
    """CLI defaults, overridden by the given namespace / dict (so scripts pass only what they change)."""
    defaults = {a.dest: a.default for a in parser._actions if a.dest != "help"}
    given = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    unknown = sorted(set(given) - set(defaults) - {"func", "command"})
    if unknown:
        raise ValueError(f"unknown training options {unknown}")
    return argparse.Namespace(**{**defaults, **given})


def _trainer_config(args: argparse.Namespace) -> TrainerConfig:
    names = {f.name for f in dataclasses.fields(TrainerConfig)}
    return TrainerConfig(**{name: getattr(args, name) for name in names if hasattr(args, name)},
                         out_dir=str(args.out))


def _saved_task(args: argparse.Namespace, kind: str) -> dict[str, Any] | None:
    """On --resume, the task description stored in the checkpoint (it decides the model's shape).
    Checked before any data is opened, so a wrong --out / --resume fails fast."""
    checkpoint = find_checkpoint(args.out)
    if not args.resume:
        if checkpoint is not None:
            raise ValueError(f"{checkpoint} already exists: pass --resume to continue that run, "
                             "or choose another --out")
        return None
    if checkpoint is None:
        raise FileNotFoundError(f"--resume: no checkpoint in {args.out} (expected {Path(args.out) / CHECKPOINT_DIR})")
    try:
        task = json.loads((checkpoint / TRAINER_STATE).read_text())["task"]
    except (OSError, json.JSONDecodeError, KeyError) as error:
        raise ValueError(f"{checkpoint / TRAINER_STATE}: unreadable checkpoint state ({error})") from None
    if task.get("kind") != kind:
        raise ValueError(f"{checkpoint} holds a {task.get('kind')!r} run, not a {kind!r} one")
    return task


def _apply_size(args: argparse.Namespace, stage: str) -> str:
    """Fill the options left unset (None) from the --size preset, chosen from the device when not given;
    returns the size. On --resume an unset --batch-size is the checkpoint's, so the data order continues."""
    size = args.size or default_size()
    values = preset(stage, size)
    if args.resume and args.batch_size is None:
        values["batch_size"] = _saved_trainer_config(args.out).get("batch_size", values["batch_size"])
    for name, value in values.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    return size


def _saved_trainer_config(run_dir) -> dict[str, Any]:
    """The trainer options a run's checkpoint was written with ({} when there is none or it is unreadable:
    _saved_task then says what is wrong)."""
    checkpoint = find_checkpoint(run_dir)
    try:
        return dict(json.loads((checkpoint / TRAINER_STATE).read_text())["trainer_config"])
    except (TypeError, OSError, json.JSONDecodeError, KeyError, ValueError):
        return {}


def _announce_size(args: argparse.Namespace, size: str, model: nn.Module, resumed: bool) -> None:
    if int(os.environ.get("RANK", "0")) != 0:
        return
    n_params = sum(p.numel() for p in model.parameters()) / 1e6
    if resumed:
        origin = "the checkpoint's shape"
    elif args.size is None:
        device = "a CUDA GPU" if torch.cuda.is_available() else "no CUDA GPU"
        other = "small" if size == "base" else "base"
        origin = f"{size}, chosen for this machine ({device}; --size {other} for the other preset)"
    else:
        origin = size
    print(f"model size: {origin}; {n_params:.2f}M parameters, batch size {args.batch_size} per process",
          file=sys.stderr)


def _open_val_split(path: str, opener: Callable[..., Dataset], **kwargs) -> Dataset | None:
    try:
        return opener(path, train=False, **kwargs)
    except (ValueError, FileNotFoundError, KeyError) as error:
        print(f"note: no validation split in {path} ({error}); training without validation "
              "(pass --val-data for one)", file=sys.stderr)
        return None


def train_vqvae(args: argparse.Namespace | dict[str, Any], train_dataset: Dataset | None = None,
                val_dataset: Dataset | None = None, callbacks: list | None = None) -> TrainResult:
    """Stage 1. args: the `videogpt train-vqvae` options (a Namespace or a dict of the ones to change).
    Data sets given here replace --data / --val-data (tests, scripts)."""
    from videogpt_core.config import VQVAEConfig, config_from_dict
    from videogpt_core.vqvae import VQVAE

    args = _as_namespace(args, _vqvae_parser())
    if args.out is None:
        raise ValueError("--out is required: the run folder")
    size = _apply_size(args, "vqvae")
    config = _trainer_config(args)
    saved = _saved_task(args, "vqvae")
    if saved is not None:
        model_config = config_from_dict(VQVAEConfig, saved["vqvae_config"], "checkpoint")
    else:
        model_config = VQVAEConfig(**{name: getattr(args, name) for name in VQVAE_MODEL_ARGS})
    if train_dataset is None:
        if args.data is None:
            raise ValueError("--data is required: a data set path (see `videogpt make-dataset`)")
        from videogpt_core.data import open_dataset
        options = dict(sequence_length=model_config.sequence_length, resolution=model_config.resolution,
                       frame_stride=args.frame_stride)
        train_dataset = open_dataset(args.data, train=True, **options)
        if val_dataset is None:
            val_dataset = (open_dataset(args.val_data, train=False, **options) if args.val_data
                           else _open_val_split(args.data, open_dataset, **options))
    torch.manual_seed(args.seed)  # the same initial weights on every process
    task = VQVAETask(VQVAE(config=model_config))
    _announce_size(args, size, task.model, resumed=saved is not None)
    return Trainer(config, task, train_dataset, val_dataset, callbacks).fit()


def _load_vqvae(path: str):
    from videogpt_core.vqvae import VQVAE

    folder = Path(path)
    if (folder / "vqvae").is_dir() and not (folder / "config.json").is_file():
        folder = folder / "vqvae"  # a pipeline folder, or a train-vqvae run's model folder
    elif (folder / MODEL_DIR).is_dir() and not (folder / "config.json").is_file():
        folder = folder / MODEL_DIR  # a train-vqvae run folder
    return VQVAE.from_pretrained(folder), str(folder)


def train_prior(args: argparse.Namespace | dict[str, Any], train_dataset: Dataset | None = None,
                val_dataset: Dataset | None = None, vqvae: nn.Module | None = None,
                callbacks: list | None = None) -> TrainResult:
    """Stage 2. args: the `videogpt train-prior` options. train_dataset: items {codes, frames?, label?,
    actions?} (default: CodeDataset(--codes)); vqvae: the frozen VQ-VAE (default: loaded from --vqvae)."""
    from videogpt_core.action_range import action_range_of
    from videogpt_core.config import VideoGPTConfig, config_from_dict
    from videogpt_core.prior import VideoGPT

    args = _as_namespace(args, _prior_parser())
    if args.out is None:
        raise ValueError("--out is required: the run folder")
    size = _apply_size(args, "prior")
    config = _trainer_config(args)
    saved = _saved_task(args, "prior")
    vqvae_path = None
    if vqvae is None:
        source = args.vqvae or (saved or {}).get("vqvae")
        if not source:
            raise ValueError("--vqvae is required: the VQ-VAE folder whose codes --codes holds")
        vqvae, vqvae_path = _load_vqvae(source)
    meta: dict[str, Any] = {}
    if train_dataset is None:
        if args.codes is None:
            raise ValueError("--codes is required: a folder written by `videogpt encode-dataset`")
        from videogpt_core.data import CodeDataset
        train_dataset = CodeDataset(args.codes)
        if val_dataset is None and args.val_data:
            val_dataset = CodeDataset(args.val_data)
        elif val_dataset is None:
            # A code cache holds one split, so there is no "test split of the same data" to fall back on.
            print("note: no validation data; pass --val-data with a cache of the test split "
                  "(`videogpt encode-dataset --split test`)", file=sys.stderr)
    meta = dict(getattr(train_dataset, "meta", None) or {})
    _check_codes_match(meta, vqvae, args.codes)
    if saved is not None:
        prior = VideoGPT(config=config_from_dict(VideoGPTConfig, saved["prior_config"], "checkpoint"))
    else:
        class_names = meta.get("class_names") or getattr(train_dataset, "class_names", None)
        action_dim = int(meta.get("action_dim") or getattr(train_dataset, "action_dim", 0) or 0)
        if args.class_cond and not class_names:
            raise ValueError("--class-cond: the codes carry no class labels (their data set has no classes)")
        if args.action_cond and not action_dim:
            raise ValueError("--action-cond: the codes carry no actions (their data set has none)")
        cached_frames = int(meta.get("n_cond_frames", args.cond_frames))
        if args.cond_frames > cached_frames:
            raise ValueError(f"--cond-frames {args.cond_frames}: the code cache keeps {cached_frames} first frame(s) "
                             "per clip; re-encode it with `videogpt encode-dataset --cond-frames K`")
        torch.manual_seed(args.seed)
        prior = VideoGPT.for_vqvae(
            vqvae, hidden_dim=args.hidden_dim, n_heads=args.n_heads, n_layers=args.n_layers,
            dropout=args.dropout, attn_dropout=args.attn_dropout, n_cond_frames=args.cond_frames,
            n_classes=len(class_names) if args.class_cond else 0,
            class_names=list(class_names) if args.class_cond else None,
            action_dim=action_dim if args.action_cond else 0, cond_drop_prob=args.cond_drop_prob,
            action_range=action_range_of(train_dataset) if args.action_cond else None,
            frame_encoder_widths=args.frame_encoder_widths, frame_encoder_blocks=args.frame_encoder_blocks)
    task = PriorTask(prior, vqvae, vqvae_path)
    _announce_size(args, size, prior, resumed=saved is not None)
    return Trainer(config, task, train_dataset, val_dataset, callbacks).fit()


def _check_codes_match(meta: dict[str, Any], vqvae, codes_path) -> None:
    if "n_codes" in meta and int(meta["n_codes"]) != vqvae.n_codes:
        raise ValueError(f"{codes_path}: codes of a VQ-VAE with {meta['n_codes']} codes, but --vqvae has "
                         f"{vqvae.n_codes}; pass the VQ-VAE that encoded them")
    if "latent_shape" in meta and tuple(meta["latent_shape"]) != tuple(vqvae.latent_shape):
        raise ValueError(f"{codes_path}: codes of latent shape {tuple(meta['latent_shape'])}, but --vqvae makes "
                         f"{tuple(vqvae.latent_shape)}; pass the VQ-VAE that encoded them")


# =============================================================================================
# Command line


def _factors(text: str) -> tuple[int, int, int]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected three comma-separated integers T,H,W such as 4,4,4, got {text!r}")
    return values


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 64,128,256,240, got {text!r}") from None


def _add_trainer_args(parser: argparse.ArgumentParser, val_help: str) -> None:
    group = parser.add_argument_group("training (shared by both stages)")
    group.add_argument("--out", required=True, metavar="RUN_DIR",
                       help="run folder: checkpoint/ (full state), model/ (exported), logs/ (TensorBoard)")
    group.add_argument("--steps", type=int, default=100_000, help="optimizer steps in total (default: %(default)s)")
    group.add_argument("--batch-size", type=int, default=None,
                       help="per process; a step sees batch x processes x grad-accum samples (default from --size: "
                            f"{preset_help('vqvae', 'batch_size')})")
    group.add_argument("--lr", type=float, default=3e-4, help="peak learning rate, AdamW (default: %(default)s)")
    group.add_argument("--warmup", type=int, default=1000,
                       help="linear warmup steps before the cosine decay (default: %(default)s)")
    group.add_argument("--min-lr-ratio", type=float, default=0.0,
                       help="the cosine ends at this fraction of --lr (default: %(default)s)")
    group.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay (default: %(default)s)")
    group.add_argument("--grad-accum", type=int, default=1,
                       help="micro-batches per optimizer step (default: %(default)s)")
    group.add_argument("--clip-grad", type=float, default=1.0,
                       help="max gradient norm, 0 to disable (default: %(default)s)")
    group.add_argument("--mixed-precision", choices=("auto", "no", "bf16", "fp16"), default="auto",
                       help="auto: bf16 on a GPU that supports it and on a CPU with native bf16 instructions "
                            "(avx512_bf16 / AMX), else full precision (default: %(default)s)")
    group.add_argument("--num-workers", type=int, default=2, help="data loading processes (default: %(default)s)")
    group.add_argument("--seed", type=int, default=0,
                       help="seeds weights, data order and dropout (default: %(default)s)")
    group.add_argument("--log-every", type=int, default=50, help="steps between logged scalars (default: %(default)s)")
    group.add_argument("--val-every", type=int, default=1000, help="steps between validations (default: %(default)s)")
    group.add_argument("--val-batches", type=int, default=16,
                       help="batches per validation and process (default: %(default)s)")
    group.add_argument("--val-data", default=None, help=val_help)
    group.add_argument("--save-every", type=int, default=1000, help="steps between checkpoints (default: %(default)s)")
    group.add_argument("--sample-every", type=int, default=5000,
                       help="steps between TensorBoard videos (default: %(default)s)")
    group.add_argument("--resume", action="store_true",
                       help="continue the run in --out exactly where it stopped (model shape from the checkpoint)")
    group.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


_EPILOG = ("Runs on the CPU, one GPU, or several GPUs / nodes unchanged: `accelerate launch [--num_processes N] "
           "-m videogpt_core.train {cmd} ...` or `torchrun --nproc-per-node N -m videogpt_core.train {cmd} ...`. "
           "Ctrl-C / SIGTERM save a checkpoint first; --resume continues. TensorBoard: "
           "`tensorboard --logdir RUN_DIR/logs`.")


def _add_size_arg(group) -> None:
    group.add_argument("--size", choices=SIZES, default=None,
                       help="model-size preset: small trains at a usable speed on a CPU, base is the reference's "
                            "size for GPUs; it fills the model options (and --batch-size) not given explicitly "
                            "(default: base with a CUDA GPU, else small)")


def _configure_vqvae_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True,
                        help="training videos: an .hdf5 file (see `videogpt make-dataset`), a video folder or UCF-101")
    group = parser.add_argument_group("VQ-VAE (ignored with --resume: the checkpoint decides)")
    _add_size_arg(group)
    group.add_argument("--embedding-dim", type=int, default=None,
                       help=f"code vector width (default from --size: {preset_help('vqvae', 'embedding_dim')})")
    group.add_argument("--n-codes", type=int, default=None,
                       help=f"codebook size (default from --size: {preset_help('vqvae', 'n_codes')})")
    group.add_argument("--n-hiddens", type=int, default=None,
                       help=f"encoder / decoder width (default from --size: {preset_help('vqvae', 'n_hiddens')})")
    group.add_argument("--n-res-layers", type=int, default=None,
                       help=f"attention residual blocks (default from --size: {preset_help('vqvae', 'n_res_layers')})")
    group.add_argument("--downsample", type=_factors, default=(4, 4, 4),
                       help="T,H,W downsampling factors, powers of two (default: 4,4,4)")
    group.add_argument("--sequence-length", type=int, default=16, help="frames per clip (default: %(default)s)")
    group.add_argument("--resolution", type=int, default=64, help="frame size in pixels (default: %(default)s)")
    group.add_argument("--frame-stride", type=int, default=1, help="take every k-th frame (default: %(default)s)")
    _add_trainer_args(parser, "held-out videos (default: the test split of --data)")


def _configure_prior_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--codes", required=True, help="a codes folder written by `videogpt encode-dataset`")
    parser.add_argument("--vqvae", required=True,
                        help="the VQ-VAE that made the codes (its folder, a pipeline folder or a train-vqvae run)")
    group = parser.add_argument_group("prior (ignored with --resume: the checkpoint decides)")
    _add_size_arg(group)
    group.add_argument("--hidden-dim", type=int, default=None,
                       help="transformer width, divisible by 3 (default from --size: "
                            f"{preset_help('prior', 'hidden_dim')})")
    group.add_argument("--n-heads", type=int, default=None,
                       help=f"attention heads (default from --size: {preset_help('prior', 'n_heads')})")
    group.add_argument("--n-layers", type=int, default=None,
                       help=f"transformer blocks (default from --size: {preset_help('prior', 'n_layers')})")
    group.add_argument("--dropout", type=float, default=None,
                       help=f"residual dropout (default from --size: {preset_help('prior', 'dropout')})")
    group.add_argument("--attn-dropout", type=float, default=None,
                       help="attention-weight dropout; on a CPU any value > 0 makes steps about 3x slower (PyTorch's "
                            "fused CPU attention has no dropout) (default from --size: "
                            f"{preset_help('prior', 'attn_dropout')})")
    group.add_argument("--cond-frames", type=int, default=0, metavar="K",
                       help="condition on the first K frames (default: %(default)s, unconditional)")
    group.add_argument("--frame-encoder-widths", type=_int_list, default=None,
                       help="widths of the frame encoder's four residual groups; the last must divide by 3 and "
                            f"--n-heads (default from --size: {preset_help('prior', 'frame_encoder_widths')}, "
                            "base being the reference's ResNet-34)")
    group.add_argument("--frame-encoder-blocks", type=_int_list, default=None,
                       help="residual blocks per group of the frame encoder (default from --size: "
                            f"{preset_help('prior', 'frame_encoder_blocks')})")
    group.add_argument("--class-cond", action="store_true", help="condition on the class label (names from the codes)")
    group.add_argument("--action-cond", action="store_true", help="condition on per-frame actions")
    group.add_argument("--cond-drop-prob", type=float, default=0.0,
                       help="drop class / action conditions with this probability, for guidance (default: %(default)s)")
    _add_trainer_args(parser, "a code cache of held-out clips (`videogpt encode-dataset --split test`); "
                              "without it there is no validation")


def _vqvae_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="videogpt train-vqvae")
    _configure_vqvae_parser(parser)
    return parser


def _prior_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="videogpt train-prior")
    _configure_prior_parser(parser)
    return parser


def _exit_code(result: TrainResult) -> int:
    return 128 + result.signal if result.interrupted and result.signal else 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    vqvae = subparsers.add_parser(
        "train-vqvae", help="train the VQ-VAE (stage 1) on videos",
        description="Train the VQ-VAE video codec. Writes RUN_DIR/checkpoint (resumable), RUN_DIR/model "
                    "(VQVAE.from_pretrained) and RUN_DIR/logs (TensorBoard: losses, codebook usage, "
                    "original|reconstruction videos).",
        epilog=_EPILOG.format(cmd="train-vqvae"))
    _configure_vqvae_parser(vqvae)
    vqvae.set_defaults(func=lambda args: _exit_code(train_vqvae(args)))

    prior = subparsers.add_parser(
        "train-prior", help="train the GPT prior (stage 2) on cached codes",
        description="Train the VideoGPT prior on codes cached by `videogpt encode-dataset`. Writes "
                    "RUN_DIR/checkpoint, RUN_DIR/model (a pipeline folder: vqvae/ + prior/) and RUN_DIR/logs.",
        epilog=_EPILOG.format(cmd="train-prior"))
    _configure_prior_parser(prior)
    prior.set_defaults(func=lambda args: _exit_code(train_prior(args)))


def main(argv: list[str] | None = None) -> int:
    """`python -m videogpt_core.train train-vqvae|train-prior ...` (what `accelerate launch -m` / `torchrun -m` run)."""
    parser = argparse.ArgumentParser(prog="python -m videogpt_core.train")
    add_commands(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    from videogpt_core.cli import run_command  # cli imports this module to register its commands

    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())

"""The training loop for any TrainingTask: one process or many (Accelerate), mixed precision, gradient
accumulation, validation, TensorBoard media, atomic checkpoints and an exact resume."""
from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

from videogpt_core.training import run_folder
from videogpt_core.training.accelerator import make_accelerator
from videogpt_core.training.data_order import (EpochBatchSampler, SeededItems, media_keys, mix_seed,
                                               validation_keys)
from videogpt_core.training.grad_layout import match_parameter_strides
from videogpt_core.training.media import MEDIA_VIDEOS
from videogpt_core.training.optimization import adamw, lr_multiplier, warmup_cosine
from videogpt_core.training.rng_state import capture_rng_states, restore_rng_states, rng_preserved, seed_everything
from videogpt_core.training.run_folder import CHECKPOINT_DIR, LOG_DIR, MODEL_DIR
from videogpt_core.training.run_log import RunLog, SpeedEstimate, StepWindow
from videogpt_core.training.stop_signals import install_stop_handlers, restore_handlers, start_workers, worker_init
from videogpt_core.training.task import TrainingTask
from videogpt_core.training.trainer_config import TrainerConfig, TrainResult

ESTIMATE_STEPS = 5  # the time per 1,000 steps is printed after this many steps


class LossModule(nn.Module):
    """Routes task.loss through forward(), so DistributedDataParallel sees (and syncs) every step and
    torch.compile (TrainerConfig.compile) captures the task's whole training forward."""

    def __init__(self, task: TrainingTask, model: nn.Module):
        super().__init__()
        self.model = model
        self.task = task

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.task.loss(self.model, batch)


def _scalars(out: dict[str, Any]) -> dict[str, torch.Tensor]:
    return {k: v.detach().float() for k, v in out.items() if isinstance(v, torch.Tensor) and v.dim() == 0}


class Trainer:
    """Trains task.model on train_dataset; see TrainerConfig. fit() returns a TrainResult.

    callbacks are called as callback(trainer) after every optimizer step (trainer.step is the
    number of steps done); calling trainer.request_stop() there stops like a SIGINT would."""

    def __init__(self, config: TrainerConfig, task: TrainingTask, train_dataset: Dataset,
                 val_dataset: Dataset | None = None, callbacks: list[Callable[["Trainer"], None]] | None = None):
        if config.batch_size is None:
            raise ValueError("TrainerConfig.batch_size is not set: give one (the stage builders take it from "
                             "the size preset)")
        self.config = config
        self.task = task
        self.train_dataset = train_dataset
        self.val_dataset = val_dataset
        self.callbacks = list(callbacks or [])
        self.run_dir = Path(config.out_dir)
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.bar = None
        self._stop_signal: int | None = None
        self._stop_requested = False

    def request_stop(self, signum: int | None = None) -> None:
        """Stop after the current step, saving a checkpoint first."""
        self._stop_requested = True
        if signum is not None:
            self._stop_signal = signum

    # ---- fit: set up, train step by step, close ----------------------------------------------------

    def fit(self) -> TrainResult:
        checkpoint = self._set_up()
        result = TrainResult(run_dir=self.run_dir, step=self.step, first_step=self.step)
        if self.step >= self.config.steps:
            self._print(f"{self.run_dir}: already at step {self.step} of {self.config.steps}; nothing to do "
                        "(raise --steps to train further)")
            return result
        self._open_logs(resumed=checkpoint is not None)
        previous_handlers = install_stop_handlers(self.request_stop)
        try:
            self._train(result)
        finally:
            restore_handlers(previous_handlers)
            if self.bar is not None:
                self.bar.close()
            self.log.close()
        result.step, result.losses = self.step, self._losses
        if self.is_main and not result.interrupted:
            self._print(f"done: step {self.step}; model in {self.run_dir / MODEL_DIR}")
        return result

    def _set_up(self) -> dict[str, Any] | None:
        """Processes, run folder, model, optimizer and (on resume) the saved state; returns the checkpoint."""
        self.accelerator = make_accelerator(self.config.mixed_precision, self.task.find_unused_parameters)
        self.device = self.accelerator.device
        self.rank, self.world_size = self.accelerator.process_index, self.accelerator.num_processes
        self.is_main = self.accelerator.is_main_process
        existing = run_folder.checkpoint_to_resume(self.run_dir, self.config.resume)
        checkpoint = run_folder.load_checkpoint(self.run_dir) if existing is not None else None
        global_batch = self.config.batch_size * self.world_size
        self._batches_per_epoch = len(self.train_dataset) // global_batch
        if self._batches_per_epoch == 0:
            raise ValueError(f"the training data has {len(self.train_dataset)} items, fewer than one batch of "
                             f"{global_batch} (--batch-size {self.config.batch_size} x {self.world_size} processes); "
                             "use a smaller --batch-size or more data")
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_model(checkpoint)
        if checkpoint is not None:
            self._restore(checkpoint)
        else:
            seed_everything(mix_seed(self.config.seed, self.rank))
        return checkpoint

    def _prepare_model(self, checkpoint: dict[str, Any] | None) -> None:
        config, model = self.config, self.task.model
        if checkpoint is not None:  # weights before prepare, so DDP starts every process from them
            from safetensors.torch import load_model
            try:
                load_model(model, str(checkpoint["model_path"]), strict=True)
            except Exception as error:
                raise ValueError(f"{checkpoint['model_path']}: does not match the model ({error})") from None
        model = self.task.prepare_model(model, self.world_size > 1, self.device)
        if self.world_size > 1:
            match_parameter_strides(model)  # gradients laid out as DDP's buckets expect (grad_layout.py)
        self.task.model = model
        optimizer = adamw(model, config.lr, config.weight_decay)
        self.scheduler = warmup_cosine(optimizer, config.warmup, config.steps, config.min_lr_ratio)
        loss_module = LossModule(self.task, model)
        if config.compile:  # the training forward only: validation and media run the model uncompiled
            loss_module.compile()
        self.wrapped, self.optimizer = self.accelerator.prepare(loss_module, optimizer)

    def _open_logs(self, resumed: bool) -> None:
        self.log = RunLog(self.run_dir, self.is_main, resumed_at=self.step if resumed else None)
        self._losses: list[float] = []
        self._window = StepWindow()
        self._speed = SpeedEstimate(min(ESTIMATE_STEPS, self.config.steps - self.step))
        self._media_batch = self._fixed_media_batch() if self.is_main else None
        if not self.is_main:
            return
        n_params = sum(p.numel() for p in self.task.model.parameters())
        global_batch = self.config.batch_size * self.world_size
        self._print(f"training {self.task.kind} ({n_params / 1e6:.2f}M parameters) on {self.world_size} "
                    f"process(es), {self.device}, precision {self.accelerator.mixed_precision}: "
                    f"{global_batch * self.config.grad_accum} samples per step, {self._batches_per_epoch} "
                    f"batches per epoch; logs in {self.run_dir / LOG_DIR}")
        if self.config.progress:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=self.config.steps, initial=self.step, unit="step", dynamic_ncols=True,
                            desc=f"train {self.task.kind}")

    def _train(self, result: TrainResult) -> None:
        batches = self._train_batches()
        self.wrapped.train()
        while self.step < self.config.steps:
            started = time.perf_counter()
            self._window.add(self._optimizer_step(batches))
            self.step += 1
            message = self._speed.record(time.perf_counter() - started, self.config.steps - self.step)
            if message:
                self._print(message)
            if self.bar is not None:
                self.bar.update(1)
            for callback in self.callbacks:
                callback(self)
            stop = self._should_stop()
            self._after_step(stop)
            if stop:
                result.interrupted, result.signal = True, self._stop_signal
                self._print(f"stopped at step {self.step}; checkpoint saved in {self.run_dir / CHECKPOINT_DIR}"
                            f" (continue with --resume)")
                return

    def _optimizer_step(self, batches: Iterator[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """One optimizer step over grad_accum micro-batches; returns the step's mean scalars."""
        accelerator, accum = self.accelerator, self.config.grad_accum
        step_scalars: dict[str, torch.Tensor] = {}
        for micro in range(accum):
            batch = next(batches)
            # Gradients are all-reduced only on the last micro-batch of a step.
            last = micro == accum - 1
            with contextlib.nullcontext() if last else accelerator.no_sync(self.wrapped):
                with accelerator.autocast():
                    out = self.wrapped(batch)
                accelerator.backward(out["loss"] / accum)
            for name, value in _scalars(out).items():
                step_scalars[name] = step_scalars.get(name, 0) + value / accum
        if self.config.clip_grad > 0:
            norm = accelerator.clip_grad_norm_(self.wrapped.parameters(), self.config.clip_grad)
            if norm is not None:
                step_scalars["grad_norm"] = norm.detach().float()
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return step_scalars

    def _after_step(self, stop: bool) -> None:
        """What is due after this step: the log line, validation, media, a checkpoint."""
        config, step = self.config, self.step
        save = step % config.save_every == 0 or step == config.steps or stop
        if step % config.log_every == 0 or save:  # before a save: never checkpoint a NaN model
            self._flush_train_log()
        if self.val_dataset is not None and len(self.val_dataset) >= self.world_size \
                and (step % config.val_every == 0 or step == config.steps):
            with self._off_the_clock():
                self.validate()
        if self.is_main and step % config.sample_every == 0:
            with self._off_the_clock():
                self.task.log_media(self._unwrapped_model().eval(), self._media_batch, self.log.writer, step)
        if save:
            with self._off_the_clock():
                self._save_checkpoint()

    def _should_stop(self) -> bool:
        stop = self._stop_requested
        if self.world_size > 1:  # a signal may reach one process only; all must stop at the same step
            flag = torch.tensor([1.0 if stop else 0.0], device=self.device)
            stop = bool(self.accelerator.reduce(flag, "sum").item() > 0)
        return stop

    # ---- data ------------------------------------------------------------------------------------

    def _train_batches(self) -> Iterator[dict[str, torch.Tensor]]:
        """Batches from the saved position on, forever; self.epoch / batch_in_epoch track the position."""
        config, workers = self.config, self.config.num_workers
        while True:
            sampler = EpochBatchSampler(len(self.train_dataset), config.batch_size, config.seed,
                                        self.epoch, self.rank, self.world_size, start_batch=self.batch_in_epoch)
            loader = DataLoader(
                SeededItems(self.train_dataset), batch_sampler=sampler, num_workers=workers,
                pin_memory=self.device.type == "cuda", worker_init_fn=worker_init if workers else None,
                # Its own generator: creating an iterator must not draw from the training RNG.
                generator=torch.Generator().manual_seed(mix_seed(config.seed, self.epoch, self.rank)),
            )
            for batch in start_workers(loader):
                self.batch_in_epoch += 1
                yield self._to_device(batch)
            self.epoch += 1
            self.batch_in_epoch = 0

    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {k: v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                for k, v in batch.items()}

    def _collate(self, dataset: Dataset, keys: list[tuple[int, int]]) -> dict[str, Any]:
        items = SeededItems(dataset)
        return self._to_device(torch.utils.data.default_collate([items[k] for k in keys]))

    def _fixed_media_batch(self) -> dict[str, torch.Tensor]:
        dataset = self.val_dataset if self.val_dataset is not None else self.train_dataset
        return self._collate(dataset, media_keys(len(dataset), MEDIA_VIDEOS, self.config.seed))

    # ---- checkpoints -----------------------------------------------------------------------------

    def _save_checkpoint(self) -> None:
        """Every process writes its RNG state; the main one writes the rest, then renames into place."""
        accelerator = self.accelerator
        staged = self.run_dir / f".{CHECKPOINT_DIR}.tmp"
        accelerator.wait_for_everyone()
        if self.is_main:
            run_folder.staging_folder(self.run_dir, CHECKPOINT_DIR)
        accelerator.wait_for_everyone()
        # Validation and media run with the RNG state restored afterwards, so this is the state at the
        # step boundary, exactly what the uninterrupted run continues from.
        run_folder.save_rng_state(staged, self.rank, capture_rng_states())
        accelerator.wait_for_everyone()
        if self.is_main:
            model = self._unwrapped_model()
            run_folder.finish_checkpoint(staged, self.run_dir, model, self.optimizer, {
                "step": self.step,
                "epoch": self.epoch,
                "batch_in_epoch": self.batch_in_epoch,
                "world_size": self.world_size,
                "scheduler": self.scheduler.state_dict(),
                "task": self.task.describe(),
                "trainer_config": dataclasses.asdict(self.config),
            })
            run_folder.export_model(self.run_dir, lambda folder: self.task.export(model, folder))
        accelerator.wait_for_everyone()

    def _restore(self, checkpoint: dict[str, Any]) -> None:
        """Trainer state from a verified checkpoint (the model weights were loaded before prepare)."""
        state = checkpoint["state"]
        weight_decays = [group["weight_decay"] for group in self.optimizer.param_groups]  # this run's, per group
        try:
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        except (KeyError, ValueError, RuntimeError) as error:
            raise ValueError(f"{checkpoint['path']}: does not fit this run ({error}); was it written by another "
                             "model or optimizer setup?") from None
        # The schedule and the weight decay are this run's configuration (a resume may give a new --lr, --warmup,
        # --steps or --weight-decay); the loaded states would keep the values they were saved with.
        config = self.config
        lr = config.lr * lr_multiplier(self.step, config.warmup, config.steps, config.min_lr_ratio)
        for group, weight_decay in zip(self.optimizer.param_groups, weight_decays):
            group["initial_lr"], group["lr"], group["weight_decay"] = config.lr, lr, weight_decay
        self.scheduler.base_lrs = [config.lr] * len(self.optimizer.param_groups)
        if state.get("world_size") != self.world_size:
            self._print(f"note: the checkpoint was written by {state.get('world_size')} processes, this run "
                        f"has {self.world_size}: the data order and random streams differ from an "
                        "uninterrupted run")
        rng = checkpoint["rng"].get(self.rank)
        if rng is None:
            seed_everything(mix_seed(self.config.seed, self.rank, self.step))
        else:
            restore_rng_states(rng)

    def _unwrapped_model(self) -> nn.Module:
        return self.accelerator.unwrap_model(self.wrapped).model

    # ---- logging and validation ------------------------------------------------------------------

    def _print(self, message: str) -> None:
        if self.is_main:
            (self.bar.write if self.bar is not None else print)(message, file=sys.stderr)

    def _flush_train_log(self) -> None:
        """Average the window's per-step scalars over steps and processes, then log them."""
        names, per_step = self._window.stacked()  # (steps, names)
        per_step = self.accelerator.reduce(per_step, "mean") if self.world_size > 1 else per_step
        per_step = per_step.cpu().double()
        losses = per_step[:, names.index("loss")].tolist()
        if not all(math.isfinite(x) for x in losses):
            raise ValueError(
                f"the loss became {losses[-1]} by step {self.step}: lower --lr, keep --clip-grad on, or try "
                f"--mixed-precision no; the last good checkpoint is in {self.run_dir / CHECKPOINT_DIR}")
        self._losses.extend(losses)
        scalars = dict(zip(names, per_step.mean(0).tolist()))
        samples = len(self._window.steps) * self.config.batch_size * self.world_size * self.config.grad_accum
        scalars["samples_per_sec"] = samples / self._window.seconds()
        scalars["lr"] = self.scheduler.get_last_lr()[0]
        scalars["epoch"] = self.epoch + self.batch_in_epoch / max(1, self._batches_per_epoch)
        self.log.log("train", self.step, scalars)
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{scalars['loss']:.4f}", samples_per_sec=f"{scalars['samples_per_sec']:.1f}")
        self._window.reset()

    @contextlib.contextmanager
    def _off_the_clock(self):
        """Validation, media and saving: kept out of throughput and out of the training RNG streams."""
        start = time.perf_counter()
        was_training = self.wrapped.training
        try:
            with rng_preserved():
                yield
        finally:
            self.wrapped.train(was_training)
            self._window.excluded += time.perf_counter() - start

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean loss (and task metrics) over the validation subset, across processes; logged as val/*."""
        model = self._unwrapped_model()
        model.eval()
        totals: dict[str, torch.Tensor] = {}
        count = torch.zeros((), device=self.device)
        config = self.config
        for keys in validation_keys(len(self.val_dataset), config.batch_size, config.val_batches, config.seed,
                                    self.rank, self.world_size):
            batch = self._collate(self.val_dataset, keys)
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
        self.log.log("val", self.step, result)
        self._print(f"step {self.step}: validation " + ", ".join(f"{k} {v:.4g}" for k, v in result.items()))
        return result

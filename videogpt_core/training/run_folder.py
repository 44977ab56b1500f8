"""A run folder and its checkpoint state: RUN_DIR/checkpoint (everything an exact resume needs, with a
checksummed manifest written last), RUN_DIR/model (the exported model), RUN_DIR/logs and metrics.jsonl.

Saves are atomic: a checkpoint is written into a staging folder and renamed into place, so a kill at any
moment leaves a complete checkpoint (RUN_DIR/checkpoint, or RUN_DIR/checkpoint.prev between the renames)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import torch

from videogpt_core.io.atomic_files import fsync_dir, fsync_file, replace_directory

CHECKPOINT_DIR = "checkpoint"  # RUN_DIR/checkpoint: the full trainer state
MODEL_DIR = "model"  # RUN_DIR/model: the exported save_pretrained folder(s)
LOG_DIR = "logs"  # RUN_DIR/logs: TensorBoard event files
METRICS_FILE = "metrics.jsonl"  # RUN_DIR/metrics.jsonl: every logged scalar, one JSON object per line
MANIFEST_NAME = "manifest.json"  # written last: a checkpoint folder without it is incomplete
MODEL_WEIGHTS = "model.safetensors"
OPTIMIZER_STATE = "optimizer.pt"
TRAINER_STATE = "trainer_state.json"


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


def checkpoint_to_resume(run_dir: str | os.PathLike, resume: bool) -> Path | None:
    """The checkpoint a run continues from (None for a new run); refuses a new run over an old one and
    a resume without a checkpoint."""
    existing = find_checkpoint(run_dir)
    if resume and existing is None:
        raise FileNotFoundError(f"--resume: no checkpoint in {run_dir} (expected {Path(run_dir) / CHECKPOINT_DIR}); "
                                "drop --resume to start a new run")
    if not resume and existing is not None:
        raise ValueError(f"{existing} already exists: pass --resume to continue that run, or choose another --out")
    return existing


def saved_task(run_dir: str | os.PathLike, resume: bool, kind: str) -> dict[str, Any] | None:
    """On resume, the task description stored in the checkpoint (it decides the model's shape).
    Checked before any data is opened, so a wrong --out / --resume fails fast."""
    checkpoint = checkpoint_to_resume(run_dir, resume)
    if checkpoint is None:
        return None
    try:
        task = json.loads((checkpoint / TRAINER_STATE).read_text())["task"]
    except (OSError, json.JSONDecodeError, KeyError) as error:
        raise ValueError(f"{checkpoint / TRAINER_STATE}: unreadable checkpoint state ({error})") from None
    if task.get("kind") != kind:
        raise ValueError(f"{checkpoint} holds a {task.get('kind')!r} run, not a {kind!r} one")
    return task


def saved_trainer_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The trainer options a run's checkpoint was written with ({} when there is none or it is unreadable:
    saved_task then says what is wrong)."""
    checkpoint = find_checkpoint(run_dir)
    try:
        return dict(json.loads((checkpoint / TRAINER_STATE).read_text())["trainer_config"])
    except (TypeError, OSError, json.JSONDecodeError, KeyError, ValueError):
        return {}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_trainer_state(directory: Path, state: dict[str, Any]) -> None:
    path = directory / TRAINER_STATE
    path.write_text(json.dumps(state, indent=2) + "\n")
    fsync_file(path)


def _write_manifest(directory: Path, step: int) -> None:
    files = {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)}
             for p in sorted(directory.iterdir()) if p.is_file() and p.name != MANIFEST_NAME}
    path = directory / MANIFEST_NAME
    path.write_text(json.dumps({"step": step, "files": files}, indent=2) + "\n")
    fsync_file(path)


def staging_folder(run_dir: Path, name: str) -> Path:
    """An empty RUN_DIR/.NAME.tmp (what a save that was cut off left there is discarded)."""
    staged = run_dir / f".{name}.tmp"
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    return staged


def save_rng_state(staged: Path, rank: int, states: dict[str, Any]) -> None:
    """Every process writes its own random streams."""
    path = staged / f"rng_state_{rank}.pt"
    torch.save(states, path)
    fsync_file(path)


def finish_checkpoint(staged: Path, run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                      state: dict[str, Any]) -> None:
    """The main process's part of a save: weights, optimizer, trainer state and manifest, then the rename."""
    from safetensors.torch import save_model

    save_model(model, str(staged / MODEL_WEIGHTS))
    fsync_file(staged / MODEL_WEIGHTS)
    torch.save(optimizer.state_dict(), staged / OPTIMIZER_STATE)
    fsync_file(staged / OPTIMIZER_STATE)
    write_trainer_state(staged, state)
    _write_manifest(staged, state["step"])
    fsync_dir(staged)
    replace_directory(staged, run_dir / CHECKPOINT_DIR)


def export_model(run_dir: Path, export: Callable[[Path], None]) -> None:
    """RUN_DIR/model, replaced atomically by what export(folder) writes."""
    staged = staging_folder(run_dir, MODEL_DIR)
    export(staged)
    fsync_dir(staged)
    replace_directory(staged, run_dir / MODEL_DIR)


def _verify_manifest(directory: Path) -> dict[str, Any]:
    manifest_path = directory / MANIFEST_NAME
    if not manifest_path.is_file():
        raise ValueError(f"{manifest_path}: missing, so the checkpoint in {directory} is incomplete; "
                         "delete it (or resume from a copy of an earlier one)")
    try:
        files = json.loads(manifest_path.read_text())["files"]
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
    return files


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Verify and read a checkpoint (a run folder or its checkpoint folder).

    Returns {"path", "state" (trainer_state.json), "model_path", "optimizer" (state dict),
    "rng" ({rank: states})}. Raises FileNotFoundError when there is none and a ValueError naming
    the file when one is incomplete or corrupt."""
    directory = find_checkpoint(path)
    if directory is None:
        raise FileNotFoundError(f"no checkpoint in {path} (expected {Path(path) / CHECKPOINT_DIR})")
    files = _verify_manifest(directory)

    def read(name: str, reader):
        try:
            return reader(directory / name)
        except Exception as error:  # any parse failure of a file that passed its checksum
            raise ValueError(f"{directory / name}: unreadable checkpoint file ({error})") from None

    def read_torch(name: str):
        return read(name, lambda p: torch.load(p, map_location="cpu", weights_only=True))

    state = read(TRAINER_STATE, lambda p: json.loads(p.read_text()))
    rng = {int(name[len("rng_state_"):-len(".pt")]): read_torch(name)
           for name in files if name.startswith("rng_state_") and name.endswith(".pt")}
    return {"path": directory, "state": state, "model_path": directory / MODEL_WEIGHTS,
            "optimizer": read_torch(OPTIMIZER_STATE), "rng": rng}

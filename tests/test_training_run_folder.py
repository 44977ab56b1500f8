"""The run folder and its checkpoint: guards against overwriting / resuming nothing, atomic saves, corrupt files."""
import json
import os
from pathlib import Path

import pytest

from training_helpers import MovingSquares, trainer_state, vqvae_run
from videogpt_core.training import load_checkpoint, run_folder, train_vqvae


def test_run_folder_guards(tmp_path):
    data = MovingSquares(8)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train_vqvae(*vqvae_run(tmp_path / "new", resume=True), train_dataset=data)
    train_vqvae(*vqvae_run(tmp_path / "run", steps=1), train_dataset=data)
    with pytest.raises(ValueError, match="--resume"):
        train_vqvae(*vqvae_run(tmp_path / "run", steps=2), train_dataset=data)
    with pytest.raises(ValueError, match="fewer than one batch"):
        train_vqvae(*vqvae_run(tmp_path / "small"), train_dataset=MovingSquares(3))


def test_crash_while_writing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    run = tmp_path / "run"
    data = MovingSquares(8)
    real_write = run_folder.write_trainer_state
    calls = []

    def failing_write(directory, state):
        calls.append(state["step"])
        if state["step"] == 4:
            (directory / "trainer_state.json").write_text('{"step": 4, "trunc')  # half written, then "killed"
            raise KeyboardInterrupt("killed mid-save")
        real_write(directory, state)

    monkeypatch.setattr(run_folder, "write_trainer_state", failing_write)
    with pytest.raises(KeyboardInterrupt):
        train_vqvae(*vqvae_run(run, steps=6, save_every=2), train_dataset=data)
    assert calls == [2, 4]
    assert (run / ".checkpoint.tmp").is_dir()  # the partial save
    assert load_checkpoint(run)["state"]["step"] == 2  # the previous one, intact
    monkeypatch.setattr(run_folder, "write_trainer_state", real_write)
    resumed = train_vqvae(*vqvae_run(run, steps=6, save_every=2, resume=True), train_dataset=data)
    assert resumed.first_step == 2 and resumed.step == 6
    assert not (run / ".checkpoint.tmp").exists()
    # Steps 3-4 ran twice; their first records were dropped on resume.
    logged = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert logged == [1, 2, 3, 4, 5, 6]


def test_crash_between_the_renames_falls_back_to_the_previous_checkpoint(tmp_path, monkeypatch):
    run = tmp_path / "run"
    data = MovingSquares(8)
    real_rename = os.replace

    def rename(source, target):
        if Path(target).name == "checkpoint" and (run / "checkpoint.prev").exists():
            raise KeyboardInterrupt("killed between renames")  # checkpoint -> .prev done, tmp -> checkpoint not
        real_rename(source, target)

    monkeypatch.setattr(os, "replace", rename)
    with pytest.raises(KeyboardInterrupt):
        train_vqvae(*vqvae_run(run, steps=6, save_every=2), train_dataset=data)
    assert not (run / "checkpoint").exists() and (run / "checkpoint.prev").is_dir()
    assert load_checkpoint(run)["state"]["step"] == 2
    monkeypatch.setattr(os, "replace", real_rename)
    resumed = train_vqvae(*vqvae_run(run, steps=4, save_every=2, resume=True), train_dataset=data)
    assert resumed.first_step == 2 and trainer_state(run)["step"] == 4
    assert not (run / "checkpoint.prev").exists()


def test_corrupt_checkpoint_gives_a_clear_error(tmp_path):
    run = tmp_path / "run"
    data = MovingSquares(8)
    train_vqvae(*vqvae_run(run, steps=2), train_dataset=data)
    weights = run / "checkpoint" / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"model\.safetensors: corrupt"):
        train_vqvae(*vqvae_run(run, steps=4, resume=True), train_dataset=data)
    (run / "checkpoint" / "manifest.json").write_text('{"files": ')
    with pytest.raises(ValueError, match=r"manifest\.json: corrupt"):
        load_checkpoint(run)
    (run / "checkpoint" / "manifest.json").unlink()
    with pytest.raises(ValueError, match=r"manifest\.json: missing"):
        load_checkpoint(run)

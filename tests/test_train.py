"""Tests for videogpt_core.train: learning, exact resume, atomic checkpoints, signals, 2-process training."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from videogpt_core import train
from videogpt_core.prior import VideoGPT
from videogpt_core.vqvae import VQVAE

REPO = Path(__file__).resolve().parents[1]
TINY_VQVAE = dict(embedding_dim=8, n_codes=16, n_hiddens=16, n_res_layers=1, downsample=(2, 4, 4),
                  sequence_length=4, resolution=16)
QUIET = dict(progress=False, num_workers=0, log_every=1, val_every=1000, sample_every=1000, save_every=1000)


class MovingSquares(Dataset):
    """Tiny videos: a bright square drifting over a dark background, position fixed by the index,
    brightness drawn from the global torch RNG (so the trainer's per-item seeding matters)."""

    class_names = ["left", "right"]
    action_dim = 0

    def __init__(self, n: int, frames: int = 4, size: int = 16, offset: int = 0):
        self.n, self.frames, self.size, self.offset = n, frames, size, offset

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        rng = np.random.default_rng(index + self.offset)
        x, y = rng.integers(0, self.size - 5, size=2)
        direction = 1 if index % 2 else -1
        video = torch.full((3, self.frames, self.size, self.size), -0.4)
        brightness = 0.3 + 0.2 * torch.rand(()).item()
        for t in range(self.frames):
            xt = int(np.clip(x + direction * t, 0, self.size - 4))
            video[:, t, y:y + 4, xt:xt + 4] = brightness
        return {"video": video, "label": index % 2}


class StructuredCodes(Dataset):
    """Code grids (2, 4, 4) that depend on the label and the position: learnable by a tiny prior."""

    class_names = ["a", "b"]
    action_dim = 0

    def __init__(self, n: int, n_codes: int = 16):
        self.n, self.n_codes = n, n_codes
        self.meta = {"n_codes": n_codes, "latent_shape": [2, 4, 4], "class_names": self.class_names, "action_dim": 0}

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        label = index % 2
        t, h, w = torch.meshgrid(torch.arange(2), torch.arange(4), torch.arange(4), indexing="ij")
        codes = (label * 5 + t + h + 2 * w) % self.n_codes
        noise = torch.rand(codes.shape) < 0.1  # a little randomness from the (seeded) global RNG
        codes = torch.where(noise, torch.randint(0, self.n_codes, codes.shape), codes)
        return {"codes": codes.long(), "label": label}


def _vqvae_args(out, **changes):
    return {"out": str(out), "steps": 6, "batch_size": 4, "lr": 2e-3, "warmup": 2, **TINY_VQVAE, **{**QUIET, **changes}}


def _stop_at(step):
    def callback(trainer):
        if trainer.step == step:
            trainer.request_stop()
    return callback


def _state(run_dir):
    return json.loads((Path(run_dir) / "checkpoint" / "trainer_state.json").read_text())


# ---------------------------------------------------------------- pieces


def test_lr_schedule_warmup_then_cosine():
    values = [train.lr_multiplier(s, warmup=4, total=14, min_ratio=0.1) for s in range(15)]
    assert values[:4] == [0.25, 0.5, 0.75, 1.0]
    assert values[4] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[4:], values[5:]))
    assert values[14] == pytest.approx(0.1)
    assert train.lr_multiplier(9, warmup=4, total=14) == pytest.approx(0.5)


def test_epoch_batch_sampler_order_split_and_skip():
    def batches(**kw):
        return list(train.EpochBatchSampler(n_items=20, batch_size=3, seed=7, **kw))

    epoch0 = batches(epoch=0)
    assert len(epoch0) == 6 and all(len(b) == 3 for b in epoch0)
    indices = [i for b in epoch0 for i, _ in b]
    assert len(set(indices)) == 18
    assert batches(epoch=0) == epoch0  # a function of (seed, epoch)
    assert [i for b in batches(epoch=1) for i, _ in b] != indices
    assert batches(epoch=0, start_batch=4) == epoch0[4:]
    # Two processes split each global batch of 6: disjoint, and together the 1-process order.
    rank0 = batches(epoch=0, rank=0, world_size=2)
    rank1 = batches(epoch=0, rank=1, world_size=2)
    assert len(rank0) == len(rank1) == 3
    together = [k for b0, b1 in zip(rank0, rank1) for k in b0 + b1]
    assert together == [k for b in epoch0 for k in b]


def test_seeded_items_are_deterministic_and_leave_the_rng_alone():
    items = train.SeededItems(MovingSquares(4))
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = items[(1, 99)]["video"]
    assert torch.equal(torch.get_rng_state(), before)
    torch.rand(5)
    assert torch.equal(items[(1, 99)]["video"], first)
    assert not torch.equal(items[(1, 100)]["video"], first)


def test_trainer_config_rejects_bad_values():
    with pytest.raises(ValueError, match="--grad-accum"):
        train.TrainerConfig(out_dir="x", grad_accum=0)
    with pytest.raises(ValueError, match="--mixed-precision"):
        train.TrainerConfig(out_dir="x", mixed_precision="fp8")


def test_commands_are_registered_with_help(capsys):
    import argparse
    parser = argparse.ArgumentParser(prog="videogpt")
    train.add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train-vqvae", "--data", "d.h5", "--out", "run", "--downsample", "1,2,2",
                              "--mixed-precision", "bf16", "--resume"])
    assert args.downsample == (1, 2, 2) and args.resume and args.mixed_precision == "bf16" and callable(args.func)
    args = parser.parse_args(["train-prior", "--codes", "c", "--vqvae", "v", "--out", "r", "--cond-frames", "2",
                              "--class-cond"])
    assert args.cond_frames == 2 and args.class_cond and not args.action_cond
    with pytest.raises(SystemExit):
        parser.parse_args(["train-vqvae", "--help"])
    assert "--grad-accum" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        parser.parse_args(["train-vqvae", "--data", "d", "--out", "r", "--downsample", "4,4"])


def test_video_summary_is_written_as_an_image(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path))
    train.write_video_summary(writer, "reconstruction", torch.rand(2, 3, 5, 8, 16) - 0.5, step=3)
    writer.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    (image,) = events.Images("reconstruction")
    assert image.step == 3 and (image.width, image.height) == (32, 8)
    assert image.encoded_image_string[:6] == b"GIF89a"


# ---------------------------------------------------------------- training runs (real models)


def test_vqvae_loss_falls_and_run_folder_is_complete(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    result = train.train_vqvae(_vqvae_args(run, steps=20, lr=5e-3, val_every=10, sample_every=10, save_every=10),
                               train_dataset=MovingSquares(32), val_dataset=MovingSquares(8, offset=1000))
    assert result.step == 20 and len(result.losses) == 20 and not result.interrupted
    assert np.mean(result.losses[-5:]) < 0.5 * np.mean(result.losses[:5])
    model = VQVAE.from_pretrained(run / "model")
    assert model.latent_shape == (2, 4, 4) and model.codebook.initialized
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in records if r["split"] == "val"]
    assert [r["step"] for r in val] == [10, 20] and val[-1]["loss"] < val[0]["loss"] and "psnr" in val[-1]
    train_record = records[0]
    for name in ("loss", "lr", "perplexity", "usage", "samples_per_sec", "grad_norm"):
        assert name in train_record
    events = EventAccumulator(str(run / "logs"))
    events.Reload()
    assert "train/loss" in events.Tags()["scalars"] and "val/loss" in events.Tags()["scalars"]
    assert [e.step for e in events.Images("reconstruction")] == [10, 20]
    checkpoint = train.load_checkpoint(run)
    assert checkpoint["state"]["step"] == 20 and 0 in checkpoint["rng"]
    assert not list(run.glob(".*.tmp")) and not (run / "checkpoint.prev").exists()


def test_vqvae_resume_reproduces_the_uninterrupted_run(tmp_path):
    data = MovingSquares(12)  # 3 batches per epoch: the 6 steps x 2 micro-batches cross epochs
    args = dict(steps=6, grad_accum=2, save_every=100)
    straight = train.train_vqvae(_vqvae_args(tmp_path / "a", **args), train_dataset=data)

    first = train.train_vqvae(_vqvae_args(tmp_path / "b", **args), train_dataset=data, callbacks=[_stop_at(3)])
    assert first.interrupted and first.step == 3 and _state(tmp_path / "b")["step"] == 3
    # Resumed with DataLoader workers: per-item seeds make the data independent of the worker count.
    resumed = train.train_vqvae(_vqvae_args(tmp_path / "b", resume=True, **args, num_workers=2), train_dataset=data)
    assert resumed.first_step == 3 and resumed.step == 6

    assert first.losses + resumed.losses == straight.losses  # exactly
    a = VQVAE.from_pretrained(tmp_path / "a" / "model").state_dict()
    b = VQVAE.from_pretrained(tmp_path / "b" / "model").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # weights, codebook buffers, BatchNorm statistics


def _prior_args(out, **changes):
    return {"out": str(out), "steps": 6, "batch_size": 4, "lr": 3e-3, "warmup": 2, "hidden_dim": 24, "n_heads": 2,
            "n_layers": 1, "dropout": 0.1, "attn_dropout": 0.1, "class_cond": True, "cond_drop_prob": 0.2,
            **QUIET, **changes}


@pytest.fixture()
def tiny_vqvae():
    torch.manual_seed(0)
    return VQVAE(**TINY_VQVAE)


def test_prior_loss_falls_and_exports_a_pipeline(tmp_path, tiny_vqvae):
    run = tmp_path / "prior"
    result = train.train_prior(_prior_args(run, steps=30, lr=1e-2, val_every=30, sample_every=30),
                               train_dataset=StructuredCodes(32), val_dataset=StructuredCodes(8), vqvae=tiny_vqvae)
    assert np.mean(result.losses[-5:]) < 0.6 * np.mean(result.losses[:5])
    assert result.losses[0] == pytest.approx(np.log(16), rel=0.05)  # zero-initialised output layer
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert "bits_per_token" in records[0]
    from videogpt_core.checkpoints import load_models
    vqvae, prior = load_models(run / "model")
    assert prior.config.n_classes == 2 and prior.config.class_names == ["a", "b"]
    assert torch.equal(prior.codebook, tiny_vqvae.codebook.embeddings)


def test_prior_frame_encoder_size_options(capsys):
    base = ["--codes", "c", "--vqvae", "v", "--out", "o"]
    args = train._prior_parser().parse_args(base + ["--frame-encoder-widths", "8,8,8,12",
                                                    "--frame-encoder-blocks", "1,1,1,1"])
    assert args.frame_encoder_widths == (8, 8, 8, 12) and args.frame_encoder_blocks == (1, 1, 1, 1)
    defaults = train._prior_parser().parse_args(base + ["--size", "base"])
    train._apply_size(defaults, "prior")
    assert defaults.frame_encoder_widths == (64, 128, 256, 240)  # the reference's ResNet-34
    with pytest.raises(SystemExit):
        train._prior_parser().parse_args(base + ["--frame-encoder-widths", "8,x"])
    assert "comma-separated integers" in capsys.readouterr().err


def test_prior_resume_reproduces_the_uninterrupted_run(tmp_path, tiny_vqvae):
    data = StructuredCodes(12)
    straight = train.train_prior(_prior_args(tmp_path / "a"), train_dataset=data, vqvae=tiny_vqvae)
    first = train.train_prior(_prior_args(tmp_path / "b"), train_dataset=data, vqvae=tiny_vqvae,
                              callbacks=[_stop_at(4)])
    resumed = train.train_prior(_prior_args(tmp_path / "b", resume=True), train_dataset=data, vqvae=tiny_vqvae)
    assert first.losses + resumed.losses == straight.losses
    a = VideoGPT.from_pretrained(tmp_path / "a" / "model" / "prior").state_dict()
    b = VideoGPT.from_pretrained(tmp_path / "b" / "model" / "prior").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


class LineTask(train.TrainingTask):
    """The smallest task: fit y = 3x - 1 with one linear layer (the trainer knows nothing else)."""

    kind = "line"

    def __init__(self, poison_at_step=None):
        super().__init__(torch.nn.Linear(1, 1))
        self.poison_at_step, self.calls = poison_at_step, 0

    def loss(self, model, batch):
        self.calls += 1
        loss = torch.nn.functional.mse_loss(model(batch["x"]), batch["y"])
        if self.poison_at_step is not None and self.calls >= self.poison_at_step:
            loss = loss * float("nan")
        return {"loss": loss}

    def export(self, model, directory):
        torch.save(model.state_dict(), directory / "line.pt")


class Points(Dataset):
    def __len__(self):
        return 16

    def __getitem__(self, index):
        x = torch.tensor([index / 8 - 1.0])
        return {"x": x, "y": 3 * x - 1}


def test_any_task_trains_through_the_interface(tmp_path):
    config = train.TrainerConfig(out_dir=str(tmp_path / "run"), steps=60, batch_size=4, lr=0.3, warmup=0, **QUIET)
    result = train.Trainer(config, LineTask(), Points(), val_dataset=Points()).fit()
    assert result.losses[-1] < 0.01 * result.losses[0]
    weights = torch.load(tmp_path / "run" / "model" / "line.pt")
    assert weights["weight"].item() == pytest.approx(3.0, abs=0.1)


def test_a_nan_loss_stops_before_it_is_checkpointed(tmp_path):
    config = train.TrainerConfig(out_dir=str(tmp_path / "run"), steps=10, batch_size=4, **{**QUIET, "log_every": 5,
                                                                                          "save_every": 2})
    with pytest.raises(ValueError, match="loss became nan by step 4"):
        train.Trainer(config, LineTask(poison_at_step=3), Points()).fit()
    assert _state(tmp_path / "run")["step"] == 2


def test_command_line_errors_are_clear(tmp_path, capsys):
    assert train.main(["train-vqvae", "--data", str(tmp_path / "missing.hdf5"), "--out", str(tmp_path / "r")]) == 2
    assert "missing.hdf5" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--action-cond"):
        train.train_prior(_prior_args(tmp_path / "p", action_cond=True), train_dataset=StructuredCodes(8),
                          vqvae=VQVAE(**TINY_VQVAE))


# ---------------------------------------------------------------- checkpoint safety


def test_run_folder_guards(tmp_path):
    data = MovingSquares(8)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train.train_vqvae(_vqvae_args(tmp_path / "new", resume=True), train_dataset=data)
    train.train_vqvae(_vqvae_args(tmp_path / "run", steps=1), train_dataset=data)
    with pytest.raises(ValueError, match="--resume"):
        train.train_vqvae(_vqvae_args(tmp_path / "run", steps=2), train_dataset=data)
    with pytest.raises(ValueError, match="fewer than one batch"):
        train.train_vqvae(_vqvae_args(tmp_path / "small"), train_dataset=MovingSquares(3))


def test_crash_while_writing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    run = tmp_path / "run"
    data = MovingSquares(8)
    real_write = train._write_trainer_state
    calls = []

    def failing_write(directory, state):
        calls.append(state["step"])
        if state["step"] == 4:
            (directory / "trainer_state.json").write_text('{"step": 4, "trunc')  # half written, then "killed"
            raise KeyboardInterrupt("killed mid-save")
        real_write(directory, state)

    monkeypatch.setattr(train, "_write_trainer_state", failing_write)
    with pytest.raises(KeyboardInterrupt):
        train.train_vqvae(_vqvae_args(run, steps=6, save_every=2), train_dataset=data)
    assert calls == [2, 4]
    assert (run / ".checkpoint.tmp").is_dir()  # the partial save
    assert train.load_checkpoint(run)["state"]["step"] == 2  # the previous one, intact
    monkeypatch.setattr(train, "_write_trainer_state", real_write)
    resumed = train.train_vqvae(_vqvae_args(run, steps=6, save_every=2, resume=True), train_dataset=data)
    assert resumed.first_step == 2 and resumed.step == 6
    assert not (run / ".checkpoint.tmp").exists()
    # Steps 3-4 ran twice; their first records were dropped on resume.
    logged = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert logged == [1, 2, 3, 4, 5, 6]


def test_crash_between_the_renames_falls_back_to_the_previous_checkpoint(tmp_path, monkeypatch):
    run = tmp_path / "run"
    data = MovingSquares(8)
    real_rename = train._rename

    def rename(source, target):
        if Path(target).name == "checkpoint" and (run / "checkpoint.prev").exists():
            raise KeyboardInterrupt("killed between renames")  # checkpoint -> .prev done, tmp -> checkpoint not
        real_rename(source, target)

    monkeypatch.setattr(train, "_rename", rename)
    with pytest.raises(KeyboardInterrupt):
        train.train_vqvae(_vqvae_args(run, steps=6, save_every=2), train_dataset=data)
    assert not (run / "checkpoint").exists() and (run / "checkpoint.prev").is_dir()
    assert train.load_checkpoint(run)["state"]["step"] == 2
    monkeypatch.setattr(train, "_rename", real_rename)
    resumed = train.train_vqvae(_vqvae_args(run, steps=4, save_every=2, resume=True), train_dataset=data)
    assert resumed.first_step == 2 and _state(run)["step"] == 4
    assert not (run / "checkpoint.prev").exists()


def test_corrupt_checkpoint_gives_a_clear_error(tmp_path):
    run = tmp_path / "run"
    data = MovingSquares(8)
    train.train_vqvae(_vqvae_args(run, steps=2), train_dataset=data)
    weights = run / "checkpoint" / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"model\.safetensors: corrupt"):
        train.train_vqvae(_vqvae_args(run, steps=4, resume=True), train_dataset=data)
    (run / "checkpoint" / "manifest.json").write_text('{"files": ')
    with pytest.raises(ValueError, match=r"manifest\.json: corrupt"):
        train.load_checkpoint(run)
    (run / "checkpoint" / "manifest.json").unlink()
    with pytest.raises(ValueError, match=r"manifest\.json: missing"):
        train.load_checkpoint(run)


# ---------------------------------------------------------------- processes (slow)


_SCRIPT = """
import os, sys, torch
sys.path.insert(0, {tests!r})
torch.set_num_threads(1)
from safetensors.torch import save_file
from test_train import MovingSquares, TINY_VQVAE, QUIET
from videogpt_core import train

rank = int(os.environ.get("RANK", "0"))

if {slow_worker_start!r}:
    # Widen the gap between torch's worker signal handlers and worker_init_fn, and say when it opens.
    import time
    from torch.utils.data._utils import signal_handling
    torch_handlers = signal_handling._set_worker_signal_handlers

    def slow_handlers():
        torch_handlers()
        open(os.path.join({out!r}, "worker-starting"), "w").close()
        time.sleep(2)

    signal_handling._set_worker_signal_handlers = slow_handlers

def dump(trainer):
    # This process's own copy of the model after each step: the parent compares the processes.
    state = {{k: v.detach().contiguous() for k, v in trainer.task.model.state_dict().items()}}
    save_file(state, os.path.join({out!r}, f"rank{{rank}}_step{{trainer.step}}.safetensors"))

args = dict(out={out!r}, batch_size=2, lr=2e-3, warmup=1, **TINY_VQVAE)
args.update(QUIET)
args.update({changes!r})
result = train.train_vqvae(args, train_dataset=MovingSquares(16), val_dataset=MovingSquares(4, offset=99),
                           callbacks=[dump] if {dump!r} else [])
print(f"rank {{rank}} of {{os.environ.get('WORLD_SIZE', '1')}} reached step {{result.step}}", flush=True)
sys.exit(train._exit_code(result))
"""


def _script(tmp_path, out, dump=False, slow_worker_start=False, **changes):
    path = tmp_path / "run_train.py"
    path.write_text(_SCRIPT.format(tests=str(REPO / "tests"), out=str(out), changes=changes, dump=dump,
                                   slow_worker_start=slow_worker_start))
    return path


def _env():
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
@pytest.mark.parametrize("whole_group", [False, True], ids=["process", "process-group-with-workers"])
def test_sigterm_saves_a_checkpoint_and_exits(tmp_path, whole_group):
    # `timeout` and cluster schedulers signal the whole process group, data-loading workers included.
    run = tmp_path / "run"
    script = _script(tmp_path, run, steps=100_000, **(dict(num_workers=1) if whole_group else {}))
    process = subprocess.Popen([sys.executable, str(script)], env=_env(), start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    metrics = run / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 3):
        time.sleep(0.2)
    assert process.poll() is None, process.stdout.read()
    if whole_group:
        os.killpg(process.pid, signal.SIGTERM)
    else:
        process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, output
    state = train.load_checkpoint(run)["state"]
    logged = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert state["step"] == logged[-1] >= 3 and "continue with --resume" in output
    assert VQVAE.from_pretrained(run / "model").codebook.initialized


@pytest.mark.slow
def test_a_group_signal_while_a_worker_starts_stops_the_run_cleanly(tmp_path):
    # A worker signalled before its worker_init_fn runs must not die (it would take the run with it).
    run = tmp_path / "run"
    run.mkdir()
    script = _script(tmp_path, run, slow_worker_start=True, steps=100_000, num_workers=1)
    process = subprocess.Popen([sys.executable, str(script)], env=_env(), start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "worker-starting").exists():
        time.sleep(0.05)
    assert process.poll() is None, process.stdout.read()
    os.killpg(process.pid, signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, output
    assert train.load_checkpoint(run)["state"]["step"] >= 1 and "continue with --resume" in output


@pytest.mark.slow
def test_two_process_cpu_training_keeps_the_codebook_in_sync(tmp_path):
    from safetensors.torch import load_file

    run = tmp_path / "run"
    run.mkdir()
    script = _script(tmp_path, run, dump=True, steps=4, val_every=2)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               str(script)]
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    for rank in (0, 1):
        assert f"rank {rank} of 2 reached step 4" in done.stdout
    for step in (1, 4):
        rank0 = load_file(str(run / f"rank0_step{step}.safetensors"))
        rank1 = load_file(str(run / f"rank1_step{step}.safetensors"))
        for name in ("codebook.embeddings", "codebook.N", "codebook.z_avg"):
            assert torch.equal(rank0[name], rank1[name]), name
        params = [k for k in rank0 if "running_" not in k and "num_batches" not in k]
        assert all(torch.equal(rank0[k], rank1[k]) for k in params)  # DDP kept the weights equal
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "train"] == [1, 2, 3, 4]  # logged once, by rank 0
    assert [r["step"] for r in records if r["split"] == "val"] == [2, 4]
    state = train.load_checkpoint(run)
    assert state["state"]["world_size"] == 2 and sorted(state["rng"]) == [0, 1]
    # Each rank trained on its own half of every global batch: different per-rank losses at step 1.
    assert not torch.equal(load_file(str(run / "rank0_step1.safetensors"))["encoder.res_stack.0.block.0.running_mean"],
                           load_file(str(run / "rank1_step1.safetensors"))["encoder.res_stack.0.block.0.running_mean"])

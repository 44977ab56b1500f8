"""Processes: SIGTERM (to the process or its whole group) saves a checkpoint and exits 128 + 15; two CPU processes
train in sync."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from training_helpers import REPO
from videogpt_core.models.vqvae import VQVAE
from videogpt_core.training import load_checkpoint


_SCRIPT = """
import os, sys, torch
sys.path.insert(0, {tests!r})
torch.set_num_threads(1)
from safetensors.torch import save_file
from training_helpers import MovingSquares, TINY_VQVAE, QUIET, vqvae_configs
from videogpt_core.training import train_vqvae

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
result = train_vqvae(*vqvae_configs(**args), train_dataset=MovingSquares(16), val_dataset=MovingSquares(4, offset=99),
                           callbacks=[dump] if {dump!r} else [])
print(f"rank {{rank}} of {{os.environ.get('WORLD_SIZE', '1')}} reached step {{result.step}}", flush=True)
sys.exit(result.exit_code)
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
    state = load_checkpoint(run)["state"]
    logged = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert state["step"] == logged[-1] >= 3 and "continue with --resume" in output
    assert VQVAE.from_pretrained(run / "model").codebook.initialized


@pytest.mark.slow
def test_a_cpu_time_limit_stops_the_run_with_a_checkpoint(tmp_path):
    """`ulimit -S -t N` gives a run N seconds of CPU: SIGXCPU (sent again every second past the soft limit)
    stops it at the end of a step with a checkpoint, well before the hard limit's SIGKILL."""
    import resource

    run = tmp_path / "run"
    script = _script(tmp_path, run, steps=100_000, num_workers=1)

    def cpu_budget():
        resource.setrlimit(resource.RLIMIT_CPU, (8, 60))

    process = subprocess.run([sys.executable, str(script)], env=_env(), preexec_fn=cpu_budget,
                             capture_output=True, text=True, timeout=300)
    output = process.stdout + process.stderr
    assert process.returncode == 128 + signal.SIGXCPU, output
    state = load_checkpoint(run)["state"]
    logged = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert state["step"] >= logged[-1] >= 1 and "continue with --resume" in output


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
    assert load_checkpoint(run)["state"]["step"] >= 1 and "continue with --resume" in output


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
    state = load_checkpoint(run)
    assert state["state"]["world_size"] == 2 and sorted(state["rng"]) == [0, 1]
    # Each rank trained on its own half of every global batch: different per-rank losses at step 1.
    assert not torch.equal(load_file(str(run / "rank0_step1.safetensors"))["encoder.res_stack.0.block.0.running_mean"],
                           load_file(str(run / "rank1_step1.safetensors"))["encoder.res_stack.0.block.0.running_mean"])

"""Both stages from the command line on two CPU processes (torchrun, gloo): a tiny VQ-VAE and a tiny frame- and
action-conditioned prior train, stop, resume, and every process holds the same weights at the end."""
import os
import subprocess
import sys

import pytest
import torch

from training_helpers import REPO, trainer_state

# Runs the `videogpt` command line in each process, saving that process's own weights when training ends.
_LAUNCHER = """
import os, sys
import torch
torch.set_num_threads(1)
from safetensors.torch import save_file
import videogpt_core.cli.main as cli
from videogpt_core.training.trainer import Trainer

fit = Trainer.fit

def fit_and_save_weights(trainer):
    result = fit(trainer)
    state = {k: v.detach().contiguous() for k, v in trainer.task.model.state_dict().items()}
    save_file(state, os.path.join(trainer.run_dir, f"rank{trainer.rank}-step{trainer.step}.safetensors"))
    return result

Trainer.fit = fit_and_save_weights
sys.exit(cli.main(sys.argv[1:]))
"""

TINY = ["--batch-size", "2", "--lr", "2e-3", "--warmup", "1", "--num-workers", "0", "--no-progress",
        "--log-every", "1", "--val-every", "1000", "--sample-every", "1000", "--save-every", "1000"]
TINY_VQVAE = ["--embedding-dim", "8", "--n-codes", "16", "--n-hiddens", "16", "--n-res-layers", "1",
              "--downsample", "2,4,4", "--sequence-length", "4", "--resolution", "16"]
TINY_PRIOR = ["--hidden-dim", "24", "--n-heads", "2", "--n-layers", "1", "--dropout", "0", "--attn-dropout", "0",
              "--cond-frames", "1", "--action-cond", "--frame-encoder-widths", "8,8,8,12",
              "--frame-encoder-blocks", "1,1,1,1"]


def _env():
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _videogpt(*args):
    done = subprocess.run([sys.executable, "-m", "videogpt_core", *args], env=_env(), capture_output=True,
                          text=True, timeout=1800)
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]


def _torchrun(launcher, *args):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               str(launcher), *args]
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=1800)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    assert output.count("on 2 process(es)") == 1, output[-5000:]
    # Every gradient reaches DDP's buckets in their layout (grad_layout.py), so DDP copies none with a warning.
    assert output.count("Grad strides do not match bucket view strides") == 0, output[-5000:]
    return output


def _same_weights_in_both_processes(run, step):
    from safetensors.torch import load_file

    ranks = [load_file(str(run / f"rank{rank}-step{step}.safetensors")) for rank in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys()
    # BatchNorm statistics are each process's own on the CPU (gloo has no SyncBatchNorm); all else is shared.
    shared = [name for name in ranks[0] if "running_" not in name and "num_batches_tracked" not in name]
    assert len(shared) > 10
    different = [name for name in shared if not torch.equal(ranks[0][name], ranks[1][name])]
    assert not different, different


@pytest.mark.slow
def test_both_stages_train_and_resume_on_two_processes_in_sync(tmp_path):
    launcher = tmp_path / "launch.py"
    launcher.write_text(_LAUNCHER)
    _videogpt("make-dataset", "pusher", "--out", str(tmp_path / "data"), "--n", "8", "--n-test", "2", "--frames",
              "8", "--quiet")
    data = tmp_path / "data" / "pusher.hdf5"

    vqvae = tmp_path / "vqvae"
    stage = ["train-vqvae", "--data", str(data), "--out", str(vqvae), *TINY_VQVAE, *TINY]
    _torchrun(launcher, *stage, "--steps", "2")
    resumed = _torchrun(launcher, *stage, "--steps", "4", "--resume")
    assert resumed.count("note: the checkpoint was written by") == 0  # the same two processes carry on
    assert trainer_state(vqvae)["step"] == 4 and trainer_state(vqvae)["world_size"] == 2
    _same_weights_in_both_processes(vqvae, 2)
    _same_weights_in_both_processes(vqvae, 4)

    codes = tmp_path / "codes"
    _videogpt("encode-dataset", "--checkpoint", str(vqvae / "model"), "--data", str(data), "--out", str(codes),
              "--batch-size", "4")
    prior = tmp_path / "prior"
    stage = ["train-prior", "--codes", str(codes), "--vqvae", str(vqvae / "model"), "--out", str(prior),
             *TINY_PRIOR, *TINY]
    _torchrun(launcher, *stage, "--steps", "2")
    _torchrun(launcher, *stage, "--steps", "4", "--resume")
    assert trainer_state(prior)["step"] == 4 and trainer_state(prior)["world_size"] == 2
    _same_weights_in_both_processes(prior, 2)
    _same_weights_in_both_processes(prior, 4)
    assert (prior / "model" / "prior").is_dir() and (prior / "model" / "vqvae").is_dir()

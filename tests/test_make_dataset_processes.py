"""`videogpt make-dataset` with two worker processes leaves no process it started alive, for each simulator:
not when it finishes, not when it is stopped mid-run (SIGTERM to it, Ctrl-C to its process group)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytest.importorskip("vizdoom", reason='the simulators are an optional extra: pip install -e ".[worlds]"')
pytest.importorskip("gymnasium_robotics", reason='the simulators are an optional extra: pip install -e ".[worlds]"')
pytest.importorskip("mujoco", reason='the simulators are an optional extra: pip install -e ".[worlds]"')

REPO = Path(__file__).resolve().parents[1]


def _start(world, out, n_train):
    """The command, started by setsid: every process it starts, however deep, has the command's pid as its
    session id."""
    command = [sys.executable, "-m", "videogpt_core", "make-dataset", world, "--out", str(out), "--n", str(n_train),
               "--n-test", "2", "--frames", "8", "--workers", "2", "--quiet"]
    return subprocess.Popen(command, env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=_ctrl_c_as_in_a_terminal)


def _ctrl_c_as_in_a_terminal():
    # A shell starts background jobs with SIGINT ignored, and children inherit that: pytest run that way would
    # start a command that Ctrl-C cannot stop. A terminal's command has the default action.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _alive_started_by(command):
    alive = []
    for process in psutil.process_iter(["name", "status"]):
        try:
            if os.getsid(process.pid) == command.pid and process.info["status"] != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except (ProcessLookupError, PermissionError):
            pass
    return alive


def _simulators_running(world, command):
    """How many of the command's processes run a simulator: ViZDoom engines, or workers with MuJoCo loaded."""
    count = 0
    for process in _alive_started_by(command):
        try:
            if world == "vizdoom":
                count += process.info["name"] == "vizdoom"
            else:
                count += any("mujoco" in mapped.path for mapped in process.memory_maps())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return count


def _assert_nothing_left(command):
    deadline = time.monotonic() + 5  # the command has exited; what it started must be gone already
    while _alive_started_by(command) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive_started_by(command), [(p.pid, p.info["name"]) for p in _alive_started_by(command)]


@pytest.mark.parametrize("world", ["vizdoom", pytest.param("fetchpush", marks=pytest.mark.slow)])
def test_no_process_outlives_the_command(world, tmp_path):
    command = _start(world, tmp_path, 4)
    output, _ = command.communicate(timeout=300)
    assert command.returncode == 0, output
    assert f"wrote {tmp_path / f'{world}.hdf5'} (4 train + 2 test episodes of 8 frames)" in output
    _assert_nothing_left(command)


@pytest.mark.slow
@pytest.mark.parametrize("world", ["vizdoom", "fetchpush"])
@pytest.mark.parametrize("stop", ["SIGTERM", "Ctrl-C"])
def test_no_process_outlives_a_stopped_command(world, stop, tmp_path):
    command = _start(world, tmp_path, 5000)
    deadline = time.monotonic() + 240
    while _simulators_running(world, command) < 2 and time.monotonic() < deadline:
        assert command.poll() is None, command.stdout.read()
        time.sleep(0.2)
    assert _simulators_running(world, command) == 2  # mid-run: both workers render
    if stop == "SIGTERM":
        command.send_signal(signal.SIGTERM)
    else:  # a terminal's Ctrl-C signals the whole foreground process group
        os.killpg(command.pid, signal.SIGINT)
    output, _ = command.communicate(timeout=120)
    signum = signal.SIGTERM if stop == "SIGTERM" else signal.SIGINT
    assert command.returncode == 128 + signum, output
    assert f"stopped by {signum.name}; nothing was written" in output
    assert not list(tmp_path.iterdir())  # no data set, no partial file
    _assert_nothing_left(command)

"""The episode workers: results in order, errors raised here, a worker that dies replaced (and what it started
killed with it), a job that keeps killing its worker named, and every worker gone when the block ends, its
simulators closed."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from videogpt_core.data.episode_workers import ATTEMPTS, EpisodeWorkers, WorkerDied, episode_renderer
from videogpt_core.data.worlds.simulators import simulator

# A stand-in for a simulator's engine: a child process that ignores SIGTERM, as ViZDoom's does.
_ENGINE = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"]


def _square(job):
    return job * job


def _fail_on_three(job):
    if job == 3:
        raise ValueError("episode 3 cannot be drawn")
    return job


def _die_once(job):
    """Job (value, folder): the first worker to run value 2 starts an engine, notes its pid and dies."""
    value, folder = job
    marker = Path(folder) / "died"
    if value == 2 and not marker.exists():
        engine = subprocess.Popen(_ENGINE)
        marker.write_text(str(engine.pid))
        os.kill(os.getpid(), signal.SIGKILL)
    return value


def _always_die(job):
    if job == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return job


def _with_simulator(job):
    """Starts this worker's (pretend) simulator, whose closing writes a file named after the worker."""
    folder = Path(job[1])

    def start():
        return "engine", lambda: (folder / f"closed-{os.getpid()}").write_text("closed")

    simulator("test-engine", start)
    return job[0], os.getpid()


def _start_simulator_and_wait(job):
    _with_simulator(job)
    (Path(job[1]) / f"started-{os.getpid()}").write_text("started")
    time.sleep(120)


def _our_children():
    """This process's children and theirs, but multiprocessing's resource tracker (which ends with this process)."""
    return [child for child in psutil.Process().children(recursive=True)
            if child.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(child.cmdline())]


def test_results_in_order_and_no_worker_left():
    with EpisodeWorkers(2, _square) as workers:
        pids = [worker.process.pid for worker in workers._workers]
        assert workers.map(list(range(10))) == [job * job for job in range(10)]
        assert workers.map([]) == []
    assert not _our_children() and not any(psutil.pid_exists(pid) for pid in pids)
    with episode_renderer(1, _square) as render:  # one worker: this process renders
        assert render([3, 4]) == [9, 16]


def test_an_error_in_a_job_is_raised_here_with_the_workers_traceback():
    with pytest.raises(ValueError, match="episode 3 cannot be drawn") as raised:
        with episode_renderer(2, _fail_on_three) as render:
            render(list(range(6)))
    assert "_fail_on_three" in str(raised.value.__cause__)  # where in the worker it was raised
    assert not _our_children()


@pytest.mark.slow
def test_a_dead_worker_is_replaced_its_engine_killed_and_its_job_done_again(tmp_path, capfd):
    with EpisodeWorkers(2, _die_once, describe=lambda job: f"episode seed {job[0]}") as workers:
        assert workers.map([(value, str(tmp_path)) for value in range(6)]) == list(range(6))
        # The engine of the dead worker (its process group) is gone although it ignores SIGTERM.
        engine = int((tmp_path / "died").read_text())
        assert not psutil.pid_exists(engine) or psutil.Process(engine).status() == psutil.STATUS_ZOMBIE
        assert len(workers._workers) == 2 and all(worker.process.is_alive() for worker in workers._workers)
    assert "a worker process died (killed by SIGKILL) rendering episode seed 2" in capfd.readouterr().err
    assert not _our_children()


@pytest.mark.slow
def test_a_job_that_keeps_killing_its_worker_is_named(capfd):
    with pytest.raises(WorkerDied, match=f"died each of the {ATTEMPTS} times it rendered episode seed 1 "
                                         r"\(killed by SIGKILL\)"):
        with EpisodeWorkers(2, _always_die, describe=lambda job: f"episode seed {job}") as workers:
            workers.map([0, 1, 2, 3])
    assert capfd.readouterr().err.count("rendering it again") == ATTEMPTS - 1
    assert not _our_children()


def test_workers_close_their_simulators_when_they_stop(tmp_path):
    with EpisodeWorkers(2, _with_simulator) as workers:
        results = workers.map([(value, str(tmp_path)) for value in range(8)])
    started = {pid for _, pid in results}
    assert {path.name for path in tmp_path.iterdir()} == {f"closed-{pid}" for pid in started}


def test_an_interrupt_stops_busy_workers_and_they_close_their_simulators(tmp_path):
    # Ctrl-C (here a timer's KeyboardInterrupt once both workers have started their simulators) while jobs run.
    def interrupt_once_started(signum, frame):
        if len(list(tmp_path.glob("started-*"))) == 2:
            signal.setitimer(signal.ITIMER_REAL, 0)
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt_once_started)
    signal.setitimer(signal.ITIMER_REAL, 0.1, 0.1)
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            with EpisodeWorkers(2, _start_simulator_and_wait) as workers:
                workers.map([(value, str(tmp_path)) for value in range(4)])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - started < 30  # stopped, not waited for
    assert len(list(tmp_path.glob("closed-*"))) == 2
    assert not _our_children()

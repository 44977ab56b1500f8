"""Worker processes that render episodes (`make-dataset --workers N`) and never outlive the command.

A worker owns the simulators it starts (worlds/simulators.py) and closes them whenever it stops: its work done,
the command failed or interrupted (Ctrl-C, SIGTERM), or the command gone. It leads a process group of its own,
which a simulator's engine process joins (ViZDoom runs each game as a child process that ignores SIGTERM), so
whatever a worker that dies abruptly leaves behind is killed with its group. A terminal's Ctrl-C reaches the
command alone, which stops the workers. A job whose worker dies is given to a fresh worker; one that takes
down ATTEMPTS workers ends the command with a message that names it, and the other jobs keep their results.

Workers are started fresh (spawned, not forked): a forked worker would inherit the command's simulators, whose
state does not survive a fork (MuJoCo's software OpenGL waits forever for its render threads, which stay in
the command), and the locks of the command's threads.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import sys
import time
import traceback
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Iterator, Sequence

from .worlds.simulators import close_simulators, closing_new_simulators

ATTEMPTS = 3  # workers a job may take down before the command gives up on it
STOP_TIMEOUT = 10.0  # seconds a stopping worker gets to close its simulators before its group is killed
_PARENT_CHECK = 1.0  # seconds between an idle worker's checks that the command is still there
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class WorkerDied(RuntimeError):
    """Jobs whose worker process died (crashed or was killed) every time one ran them."""


class WorkerTraceback(Exception):
    """Where in the worker a job's error was raised (the `__cause__` of the error raised here)."""


class _Stop(BaseException):
    """SIGTERM in a worker: stop at once, closing the simulators on the way out."""


def _raise_stop(signum, frame):
    raise _Stop()


def _work(connection: Connection, render: Callable[[Any], Any]) -> None:
    """A worker: jobs in, results out, until told to stop or the command is gone; then close the simulators."""
    parent = os.getppid()  # the command
    try:
        if hasattr(os, "setpgid"):
            os.setpgid(0, 0)  # a group of its own, which its engines join
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the command's to handle; it stops us
        signal.signal(signal.SIGTERM, _raise_stop)
        if hasattr(signal, "pthread_sigmask"):
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)  # blocked since the start (see _start)
        while True:
            if not connection.poll(_PARENT_CHECK):
                if os.getppid() != parent:
                    return  # the command died without stopping us (e.g. SIGKILL; its end of the pipe closes too)
                continue
            job = connection.recv()
            if job is None:
                return
            connection.send(_run(render, job))
    except (_Stop, EOFError, OSError):
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the closing short
        close_simulators()


def _run(render: Callable[[Any], Any], job: Any) -> tuple[bool, Any, str]:
    """(True, result, "") or (False, error, its traceback); an error that cannot be pickled is sent as text."""
    try:
        return True, render(job), ""
    except Exception as error:
        trace = traceback.format_exc()
        try:
            pickle.dumps(error)
        except Exception:
            error = RuntimeError(f"{type(error).__name__}: {error}")
        return False, error, trace


def _exit_description(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit status {exitcode}"


def _kill_leftovers(process: multiprocessing.process.BaseProcess) -> None:
    """SIGKILL what is left of a worker: its process group (an engine that outlived it, or the worker if it
    hangs), and the worker itself if it is still starting (before it has a group, it has started nothing).
    Called as the worker ends, before it is reaped: its id names no other process."""
    if hasattr(os, "killpg"):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):  # no such group, or everything in it has ended
            pass
    process.kill()


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    connection: Connection
    job: int | None = None  # the index of the job it is rendering


class EpisodeWorkers:
    """`n` worker processes that run `render(job)` for the jobs given to `map`. Use it as a context manager:
    leaving the block stops every worker. `describe(job)` names a job in messages ("vizdoom episode seed 12")."""

    def __init__(self, n: int, render: Callable[[Any], Any], describe: Callable[[Any], str] = str):
        self.render, self.describe = render, describe
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        try:
            for _ in range(n):
                self._workers.append(self._start())
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> EpisodeWorkers:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _start(self) -> _Worker:
        ours, theirs = self._context.Pipe()
        # Started with SIGINT / SIGTERM blocked (the mask survives the exec): until the worker has its own group
        # and handlers, a signal meant for the command waits in it instead of killing it (a pending SIGINT is
        # then discarded, a SIGTERM stops it as usual).
        blocking = hasattr(signal, "pthread_sigmask")
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS) if blocking else None
        try:
            process = self._context.Process(target=_work, args=(theirs, self.render),
                                            name="episode-worker", daemon=True)
            process.start()
        finally:
            if blocking:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            theirs.close()
        return _Worker(process, ours)

    def map(self, jobs: Sequence[Any]) -> list[Any]:
        """render(job) for each job, in the order of `jobs`. An error raised by render is raised here."""
        results: list[Any] = [None] * len(jobs)
        waiting = deque(range(len(jobs)))
        deaths: dict[int, list[str]] = {}
        while True:
            for index, worker in enumerate(self._workers):
                if worker.job is None and waiting:
                    if wait([worker.process.sentinel], 0):  # it died between jobs: not the next job's doing
                        self._replace(index)
                        worker = self._workers[index]
                    worker.job = waiting.popleft()
                    try:
                        worker.connection.send(jobs[worker.job])
                    except OSError:  # it died just now; its sentinel says so below
                        pass
            busy = [worker for worker in self._workers if worker.job is not None]
            if not busy:
                return results
            ready = set(wait([w.connection for w in busy] + [w.process.sentinel for w in busy]))
            given_up = []
            for index, worker in enumerate(self._workers):
                if worker.job is None or not {worker.connection, worker.process.sentinel} & ready:
                    continue
                job, worker.job = worker.job, None
                try:
                    ok, value, trace = worker.connection.recv()
                except (EOFError, OSError):  # it died with the job
                    how = self._replace(index)
                    deaths.setdefault(job, []).append(how)
                    if len(deaths[job]) >= ATTEMPTS:
                        given_up.append(job)
                    else:
                        print(f"warning: a worker process died ({how}) rendering {self.describe(jobs[job])}; "
                              "rendering it again in a new one", file=sys.stderr)
                        waiting.appendleft(job)
                    continue
                if not ok:
                    raise value from WorkerTraceback(trace)
                results[job] = value
            if given_up:
                named = ", ".join(f"{self.describe(jobs[job])} ({deaths[job][-1]})" for job in given_up)
                raise WorkerDied(f"a worker process died each of the {ATTEMPTS} times it rendered {named}")

    def _replace(self, index: int) -> str:
        """Bury worker `index` (it died), killing what it left, and start a new one; returns how it ended."""
        worker = self._workers[index]
        wait([worker.process.sentinel], STOP_TIMEOUT)
        _kill_leftovers(worker.process)
        worker.process.join()
        worker.connection.close()
        self._workers[index] = self._start()
        return _exit_description(worker.process.exitcode)

    def close(self) -> None:
        """Stop every worker (an idle one when told, a busy one by SIGTERM), each closing its simulators;
        after STOP_TIMEOUT s whatever is left in its process group is killed."""
        for worker in self._workers:
            try:
                if worker.job is None:
                    worker.connection.send(None)
                else:
                    worker.process.terminate()
            except (OSError, ValueError):  # it has already ended
                pass
        deadline = time.monotonic() + STOP_TIMEOUT
        for worker in self._workers:
            wait([worker.process.sentinel], max(0.0, deadline - time.monotonic()))
            _kill_leftovers(worker.process)
            worker.process.join()
            worker.connection.close()
        self._workers = []


@contextlib.contextmanager
def episode_renderer(workers: int, render: Callable[[Any], Any],
                     describe: Callable[[Any], str] = str) -> Iterator[Callable[[Sequence[Any]], list[Any]]]:
    """A function that renders a list of jobs, in `workers` processes when > 1. When the block ends, however it
    ends, the workers stop and the simulators started in this process are closed."""
    with closing_new_simulators():
        if workers == 1:
            yield lambda jobs: [render(job) for job in jobs]
        else:
            with EpisodeWorkers(workers, render, describe) as episode_workers:
                yield episode_workers.map

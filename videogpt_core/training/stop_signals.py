"""Stopping on SIGINT / SIGTERM / SIGXCPU: the main process finishes its step and saves a checkpoint;
data-loading workers ignore the signals (schedulers, `timeout` and Ctrl-C signal the whole process group) so
they do not die under it. SIGXCPU is what a CPU-time limit sends (`ulimit -S -t SECONDS`): a run given a
budget of CPU time, as in equal-CPU-time comparisons, stops cleanly when it is spent."""
from __future__ import annotations

import signal
import threading
from typing import Any, Callable, Iterator

from torch.utils.data import DataLoader

STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGXCPU}


def worker_init(_worker_id: int) -> None:
    """A DataLoader worker_init_fn. Ignoring a blocked signal discards it if it is pending
    (see start_workers)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def start_workers(loader: DataLoader) -> Iterator:
    """iter(loader), with its worker processes forked while SIGINT / SIGTERM are blocked.

    A worker installs torch's SIGTERM handler (which kills it) before its worker_init_fn runs; a group
    signal in between would kill it under the main process. Forked with the signals blocked, the
    worker holds them pending until worker_init ignores them; the main process gets its own when
    the mask is restored here."""
    if not loader.num_workers:
        return iter(loader)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        return iter(loader)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def install_stop_handlers(request_stop: Callable[[int], None]) -> dict[int, Any]:
    """Call request_stop(signum) on the first SIGINT / SIGTERM / SIGXCPU; returns the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}  # signals can only be caught on the main thread (e.g. not inside a web server)
    previous = {}

    def handler(signum, frame):
        request_stop(signum)
        if signum == signal.SIGXCPU:
            # Sent again every CPU second past the soft limit, which by default would kill the process while
            # it saves and exits: ignored from now on, also after the run (the hard limit's SIGKILL remains).
            previous[signal.SIGXCPU] = signal.SIG_IGN
            return
        # A second signal acts as usual (e.g. a second Ctrl-C kills): the checkpoints are atomic.
        for sig, old in previous.items():
            signal.signal(sig, old)

    for sig in sorted(STOP_SIGNALS):
        previous[sig] = signal.signal(sig, handler)
    return previous


def restore_handlers(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)

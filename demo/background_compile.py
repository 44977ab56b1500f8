"""Compiling the served models' decode steps after the demo has started serving.

A compiled CPU decode step samples up to twice as fast, but compiling takes 20-90 s per model. Served
uncompiled first, each model is compiled by one low-priority worker thread, one model at a time, and
takes the compiled step at its next sampling window (`VideoGPTPipeline.compile_decode_step`): nobody waits
for the compiler before the first generation, and generations running meanwhile keep their samples. They
are slow meanwhile, though: the compiler is mostly Python and holds the GIL, and a sampling loop that
releases it around every small torch op waits for it each time (a pusher video took 23 s instead of 2.3 s
on a 2-core CPU while another model compiled). So it is `python app.py --compile background`, not the
default: worth it where the server starts well before its first visitor.
"""
from __future__ import annotations

import os
import queue
import sys
import threading

from videogpt_core.inference.pipeline import VideoGPTPipeline

WORKER_NICENESS = 10  # the compiler yields the cores to generations that run meanwhile


class BackgroundCompiler:
    """One daemon worker that compiles submitted pipelines in turn; `state` says where each one is."""

    def __init__(self):
        self.state: dict[str, str] = {}  # model name -> "waiting", "compiling", "compiled" or "uncompiled: why"
        self._queue: queue.Queue[tuple[str, VideoGPTPipeline]] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, name: str, pipeline: VideoGPTPipeline) -> None:
        with self._lock:
            self.state[name] = "waiting"
            self._queue.put((name, pipeline))
            if self._worker is None:  # daemon: an exiting server does not wait for the compiler
                self._worker = threading.Thread(target=self._work, name="decode-step-compiler", daemon=True)
                self._worker.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every submitted model is compiled or given up on; False if the timeout came first."""
        done = threading.Event()
        threading.Thread(target=lambda: (self._queue.join(), done.set()), daemon=True).start()
        return done.wait(timeout)

    def _work(self) -> None:
        _lower_this_threads_priority()
        while True:
            name, pipeline = self._queue.get()
            self.state[name] = "compiling"
            try:
                self.state[name] = compile_or_keep_eager(name, pipeline)
            finally:
                self._queue.task_done()


def compile_or_keep_eager(name: str, pipeline: VideoGPTPipeline) -> str:
    """Compile model `name`'s decode step; where that fails (e.g. no C++ compiler) say so and keep serving it
    uncompiled. Returns "compiled" or "uncompiled: why"."""
    try:
        pipeline.compile_decode_step()
    except Exception as error:
        print(f"warning: could not compile model {name}, serving it uncompiled: {error}", file=sys.stderr)
        return f"uncompiled: {error}"
    return "compiled"


def _lower_this_threads_priority() -> None:
    """On Linux a thread has a niceness of its own (and the compiler's worker processes inherit it)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICENESS)
    except (AttributeError, OSError):  # not Linux, or not allowed: compile at normal priority
        pass

"""The simulator engines this process started (a ViZDoom game, a MuJoCo FetchPush environment): kept for the
next episode (starting one takes 0.5-2 s) and closed together, when the work that started them ends, when a
worker process stops, and at exit.

A forked child inherits its parent's entries but never uses or closes them: a ViZDoom game drives its engine
process through named message queues, so a child using it would take the parent's frames, and closing it would
end the parent's engine. The child starts engines of its own.
"""
from __future__ import annotations

import atexit
import contextlib
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterator


@dataclass
class _Running:
    engine: Any
    close: Callable[[], None]
    pid: int  # the process that started it


_RUNNING: dict[str, _Running] = {}
_INHERITED: list[_Running] = []  # a parent's engines, kept referenced so that no destructor closes them here


def simulator(key: str, start: Callable[[], tuple[Any, Callable[[], None]]]) -> Any:
    """This process's engine `key`, started on first use by `start()`, which returns (engine, close)."""
    running = _RUNNING.get(key)
    if running is not None and running.pid == os.getpid():
        return running.engine
    if running is not None:
        _INHERITED.append(_RUNNING.pop(key))
    engine, close = start()
    _RUNNING[key] = _Running(engine, close, os.getpid())
    # Exit handlers run last-in first-out: registered again after each start, the engines close before the
    # clean-up that starting them registered (MuJoCo's OpenGL context), which keeps the exit quiet.
    atexit.unregister(close_simulators)
    atexit.register(close_simulators)
    return engine


def running_simulators() -> set[str]:
    """The keys of the engines this process started and has not closed."""
    return {key for key, running in _RUNNING.items() if running.pid == os.getpid()}


def close_simulators(keys: set[str] | None = None) -> None:
    """Close the engines this process started (those in `keys`, default all); the next episode starts new ones."""
    for key in sorted(running_simulators() if keys is None else keys & running_simulators()):
        running = _RUNNING.pop(key)
        try:
            running.close()
        except Exception as error:  # one engine failing to close must not keep the others open
            print(f"warning: could not close the {key} simulator: {error}", file=sys.stderr)


@contextlib.contextmanager
def closing_new_simulators() -> Iterator[None]:
    """Close the engines started inside the block when it ends, however it ends (those running before it
    are the caller's)."""
    before = running_simulators()
    try:
        yield
    finally:
        close_simulators(running_simulators() - before)

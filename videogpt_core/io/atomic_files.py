"""Files and folders replaced all at once: written beside their final path, flushed to disk, then renamed,
so a crash or a kill leaves either the old version or the new one, never half of one."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


def fsync_file(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a folder's renames durable (Windows cannot open folders; its renames are durable enough)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path in `path`'s folder to write the new file to; when the block ends without an
    error it becomes `path` (its data on disk first), otherwise it is deleted."""
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    os.close(fd)
    staged = Path(name)
    try:
        yield staged
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staged, 0o666 & ~umask)  # mkstemp makes files private; the result is an ordinary file
        fsync_file(staged)
        os.replace(staged, path)
        fsync_dir(path.parent)
    finally:
        staged.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as staged:
        staged.write_text(text)


def replace_directory(staged: Path, final: Path) -> None:
    """Make the complete folder `staged` the new `final`, keeping the old `final` (as FINAL.prev) until
    the new one is in place: at any moment one complete folder exists (readers fall back to FINAL.prev)."""
    previous = final.with_name(final.name + ".prev")
    if final.exists():
        if previous.exists():  # a finished earlier replacement left it: `final` is complete, so it is redundant
            shutil.rmtree(previous)
        os.replace(final, previous)
    os.replace(staged, final)
    fsync_dir(final.parent)
    shutil.rmtree(previous, ignore_errors=True)

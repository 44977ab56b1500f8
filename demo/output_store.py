"""Where the demo writes result files (videos, GIFs) before Gradio serves them."""
from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from pathlib import Path


class OutputStore:
    """Folders for result files. Gradio copies returned files into its own cache, so only the newest
    `keep` folders are kept (for direct callers) and the whole root is removed when the process exits."""

    def __init__(self, root: str | Path | None = None, keep: int = 64):
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="videogpt-demo-outputs-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.keep = keep
        self._lock = threading.Lock()
        self._folders: list[Path] = []
        atexit.register(shutil.rmtree, self.root, True)

    def new_folder(self) -> Path:
        with self._lock:
            folder = Path(tempfile.mkdtemp(dir=self.root))
            self._folders.append(folder)
            while len(self._folders) > self.keep:
                shutil.rmtree(self._folders.pop(0), ignore_errors=True)
        return folder

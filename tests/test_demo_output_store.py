"""demo/output_store.py: result folders, only the newest kept."""
from __future__ import annotations

from demo.output_store import OutputStore


def test_output_store_keeps_only_the_newest(tmp_path):
    store = OutputStore(tmp_path / "out", keep=2)
    folders = [store.new_folder() for _ in range(3)]
    assert not folders[0].exists() and folders[1].exists() and folders[2].exists()

"""demo/layout.py: on Hugging Face ZeroGPU Spaces every event that runs a model is wrapped in spaces.GPU."""
from __future__ import annotations


def test_generation_runs_under_spaces_gpu_when_available(registry, monkeypatch):
    import importlib
    import sys
    import types

    import demo.layout

    wrapped = []
    fake_spaces = types.ModuleType("spaces")
    fake_spaces.GPU = lambda fn: wrapped.append(fn.__name__) or fn
    monkeypatch.setitem(sys.modules, "spaces", fake_spaces)
    try:
        layout = importlib.reload(demo.layout)
        layout.build_demo(registry)
        assert sorted(wrapped) == ["run_continue", "run_generate", "run_reconstruct"]
    finally:
        monkeypatch.delitem(sys.modules, "spaces")
        importlib.reload(demo.layout)

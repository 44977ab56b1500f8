"""The code stays small enough to read: no library, demo or benchmark file over 400 lines, no function over 60
lines outside the demo's UI layout builders (`build_*` in demo/, one long declarative layout each)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [*sorted((ROOT / "videogpt_core").rglob("*.py")), *sorted((ROOT / "demo").rglob("*.py")),
           *sorted((ROOT / "benchmarks").rglob("*.py")), ROOT / "app.py"]
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60


def _long_functions(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            layout_builder = path.parent.name == "demo" and node.name.startswith("build_")
            if length > MAX_FUNCTION_LINES and not layout_builder:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_file_over_400_lines():
    long_files = [f"{path.relative_to(ROOT)} ({len(path.read_text().splitlines())} lines)" for path in SOURCES
                  if len(path.read_text().splitlines()) > MAX_FILE_LINES]
    assert not long_files, long_files


def test_no_function_over_60_lines_outside_the_ui_layout_builders():
    assert len(SOURCES) > 100  # the walk found the package
    long_functions = [entry for path in SOURCES for entry in _long_functions(path)]
    assert not long_functions, long_functions

"""The project's documents describe the project: what was done, with dates, machines and commands, never
how the work was organised (numbered issues, sessions, lent machines and their time limits)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = sorted([ROOT / "README.md", ROOT / "BENCHMARKS.md", *(ROOT / "checkpoints").glob("*/README.md")])
ABOUT_THE_WORK = re.compile(r"\bissues? #?\d+|#\d+\b|\bsessions?\b|\blease\b|\blent\b|\bborrowed\b|"
                            r"\b(first|second|third|fourth|fifth) round\b|\bhelpers?\b|\bagents?\b", re.IGNORECASE)


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_documents_speak_of_the_project_only(path):
    found = [(number, line.strip()) for number, line in enumerate(path.read_text().splitlines(), start=1)
             if ABOUT_THE_WORK.search(line)]
    assert not found, f"{path.name}: {found}"

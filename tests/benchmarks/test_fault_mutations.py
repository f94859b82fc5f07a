"""benchmarks/fault_mutations.py quotes the code of each fix it disables: every quote must still be in its file
exactly once, or the script exits 2 before running anything (a change to quoted code went unnoticed once)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_mutation_still_finds_its_fix_text_exactly_once():
    spec = importlib.util.spec_from_file_location("fault_mutations", ROOT / "benchmarks" / "fault_mutations.py")
    fm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fm)
    assert len(fm.MUTATIONS) >= 30
    fm.check_patterns(ROOT, fm.MUTATIONS)  # exits 2 (SystemExit) naming each quote that is missing or repeated

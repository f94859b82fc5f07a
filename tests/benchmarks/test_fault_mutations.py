"""benchmarks/fault_mutations.py quotes the code of each fix it disables: every quote must still be in its file
exactly once, or the script exits 2 before running anything (a change to quoted code went unnoticed once), and
every test it names must still exist (a renamed test fails to run, which would read as the defect caught)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _fault_mutations():
    """The script as a module (it is not a package)."""
    spec = importlib.util.spec_from_file_location("fault_mutations", ROOT / "benchmarks" / "fault_mutations.py")
    fm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fm)
    return fm


def test_every_mutation_still_finds_its_fix_text_exactly_once():
    fm = _fault_mutations()
    assert len(fm.MUTATIONS) >= 30
    fm.check_patterns(ROOT, fm.MUTATIONS)  # exits 2 (SystemExit) naming each quote that is missing or repeated


def test_every_test_a_mutation_names_still_exists():
    fm = _fault_mutations()
    missing = []
    for m in fm.MUTATIONS:
        for node in m.tests:
            path, _, name = node.partition("::")
            func = name.split("[")[0]
            if not (ROOT / path).is_file() or f"def {func}(" not in (ROOT / path).read_text():
                missing.append(node)
    assert not missing, missing

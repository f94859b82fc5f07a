"""benchmarks/precision_cases.py: two reproduce.json files become one row per case with both precisions'
phases and verdicts, and a count of the cases whose phase and verdict agree."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("precision_cases", ROOT / "benchmarks" / "precision_cases.py")
PC = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(PC)


def _write(path: Path, phases: dict[str, tuple[str, bool]]) -> str:
    cases = [{"name": n, "passed": ok, "ours": {"phase": ph, "train_acc": 0.8, "test_acc": 1.0}}
             for n, (ph, ok) in phases.items()]
    cases.insert(0, {"name": "A0", "passed": True, "ours": {"max_abs_error": 1e-6}})  # trains no network
    path.write_text(json.dumps({"paper": "x", "cases": cases, "passed": False}))
    return str(path)


def test_rows_agreement_and_usage(tmp_path, capsys):
    a = _write(tmp_path / "a.json", {"A4": ("Full Inversion", True), "A7": ("Partial Inversion", True)})
    b = _write(tmp_path / "b.json", {"A4": ("Full Inversion", True), "A7": ("Coexistence", False)})
    assert PC.main([a, b]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2] == "| A0 |  |  |  | yes |  |  |  | yes | yes |"
    assert out[3] == "| A4 | Full Inversion | 80.00 | 100.00 | yes | Full Inversion | 80.00 | 100.00 | yes | yes |"
    assert out[4].endswith("| Coexistence | 80.00 | 100.00 | NO | NO |")
    assert out[-1] == ("Same phase and verdict in 1 of 2 cases that train a network (the other 1, analytic or "
                       "pruning checks without a phase, compared by verdict only).")
    assert PC.main([a]) == 2

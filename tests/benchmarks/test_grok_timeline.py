"""benchmarks/grok_timeline.py: a run's phase at logged steps, by the same rule as its summary; a step that
was not logged or a bad --steps is a one-line error with exit code 2."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("grok_timeline", ROOT / "benchmarks" / "grok_timeline.py")
GT = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(GT)
RUN = ROOT / "docs" / "benchmarks" / "grok_arch" / "D2" / "seed1"  # a committed run: Full Inversion at the end


def test_the_last_step_has_the_summary_phase_and_the_first_is_confusion(capsys):
    summary = json.loads((RUN / "summary.json").read_text())
    assert GT.main(["--steps", f"0,{summary['steps']}", str(RUN)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[2].startswith("| D2/seed1 | 0 | ")
    assert lines[2].endswith(" | 1.00 | Confusion |")  # an untrained network fits nothing and has not collapsed
    assert lines[3].endswith(f" | {summary['phase']} |") and summary["phase"] == "Full Inversion"


def test_bad_steps_are_one_line_errors(capsys):
    assert GT.main(["--steps", "0,7", str(RUN)]) == 2
    assert GT.main(["--steps", "x", str(RUN)]) == 2
    assert GT.main(["--steps", "0", str(RUN / "missing")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and "step 7 was not logged" in err[0] and err[1].startswith("error: steps: got 'x'")

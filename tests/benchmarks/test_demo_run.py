"""benchmarks/demo_run.py: a demo run's results.json becomes a small result file, and its table shows the
run's stage times, claim counts and every missed claim; a folder without results.json is refused (exit 2)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))  # demo_run imports the discipline as a script would
_spec = importlib.util.spec_from_file_location("demo_run", ROOT / "benchmarks" / "demo_run.py")
DEMO = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(DEMO)


def _claim(case: str, passed: bool) -> dict:
    return {"paper": "eco", "case": case, "quantity": f"{case} quantity", "authors": "", "source": "",
            "ours": "0.07", "band": ">= 0.1", "passed": passed, "miss": "" if passed else "outside"}


def _results(tmp_path: Path) -> Path:
    claims = [_claim("grok A1", True), _claim("forget10 ECO", False)]
    stages = [{"name": "grok_cases", "title": "Grokking cases", "claims": claims[:1], "seconds": 237.6,
               "cached": False, "not_run": []},
              {"name": "eco_bench", "title": "ECO bench", "claims": claims[1:], "seconds": 431.2, "cached": False,
               "not_run": []}]
    meta = {"seconds": 718.1, "finished": "2026-12-01T08:08:14+0000", "versions": {"torch": "2.13.0+cpu"}}
    (tmp_path / "results.json").write_text(json.dumps({"meta": meta, "claims": claims, "stages": stages}))
    return tmp_path


def test_record_and_table(tmp_path):
    out = tmp_path / "run.json"
    assert DEMO.main(["record", str(_results(tmp_path)), "--wall-seconds", "858.4", "--install-seconds", "135",
                      "--commit", "abc1234", "--load-start", "0.76", "-o", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert (rec["claims"], rec["passed"], rec["commit"]) == (2, 1, "abc1234")
    text = DEMO.table(rec)
    assert "**14 min 18 s wall**" in text and "2 min 15 s creating" in text and "11 min 58 s" in text
    assert "**1 of 2 claims pass**" in text and "load 0.76" in text
    assert "| Grokking cases | 238 s | 1/1 pass |" in text and "| ECO bench | 431 s | 0/1 pass |" in text
    assert "- forget10 ECO: forget10 ECO quantity: 0.07 (band: >= 0.1)" in text


def test_record_refuses_a_folder_without_results(tmp_path, capsys):
    out = tmp_path / "run.json"
    assert DEMO.main(["record", str(tmp_path), "--wall-seconds", "1", "--commit", "x", "--load-start", "0", "-o", str(out)]) == 2
    assert "results.json" in capsys.readouterr().err and not out.exists()

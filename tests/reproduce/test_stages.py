"""Every stage of `forgetlab reproduce` end to end at the smoke scale: claims, figures and the written report."""

import json

import pytest
from cli_runner import run_cli

from forgetlab.reproduce.run import reproduce


def test_grok_stages_end_to_end(tmp_path, capsys):
    results, paths = reproduce(tmp_path / "r", scale="smoke", only="grok", quiet=True, argv=["reproduce"])
    assert [r.name for r in results] == ["grok_cases", "grok_phases"]
    cases, phases = results
    assert [c.case for c in cases.claims] == ["A0", "A1"]
    assert "accuracy_all_pairs" in cases.claims[0].ours and "mean_ipr" in cases.claims[0].ours
    assert all(c.passed or c.miss for c in cases.claims + phases.claims), "a missed claim must say by how much"
    assert len(phases.claims) == 2 and phases.numbers["n_runs"] == 8
    for r in results:
        for fig in r.figures:
            assert (tmp_path / "r" / fig.path).is_file(), fig.path
    data = json.loads(paths["json"].read_text())
    assert len(data["claims"]) == 4 and "Grokking cases" in paths["md"].read_text()
    # the command line on the same folder (its stages cached): stdout is exactly one JSON object
    code, stdout, _err = run_cli(["reproduce", "--out", str(tmp_path / "r"), "--scale", "smoke", "--only", "grok",
                                 "--quiet"], capsys)
    printed = json.loads(stdout)
    assert stdout.count("\n") == 1 and code == (0 if printed["passed"] == printed["claims"] else 1)
    assert printed["claims"] == 4 and printed["files"]["json"] == str(paths["json"])
    assert len(printed["missed"]) == printed["claims"] - printed["passed"]


def test_eco_stage_end_to_end(tmp_path):
    results, paths = reproduce(tmp_path / "r", scale="smoke", only="eco", quiet=True, argv=["reproduce"])
    (eco,) = results
    quantities = " | ".join(c.quantity for c in eco.claims)
    assert "model utility / target's" in quantities and "FPR, FNR" in quantities
    assert any(c.case == "MC forget subject" for c in eco.claims)
    assert all((tmp_path / "r" / f.path).is_file() for f in eco.figures)
    json.loads(paths["json"].read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))

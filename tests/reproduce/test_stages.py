"""Every stage of `forgetlab reproduce` end to end at the smoke scale: claims, figures and the written report."""

import json
from pathlib import Path

import pytest
from cli_runner import run_cli

from forgetlab.reproduce.run import reproduce


def test_grok_stages_end_to_end(tmp_path, capsys):
    results, paths = reproduce(tmp_path / "r", scale="smoke", only="grok", quiet=True, argv=["reproduce"])
    assert [r.name for r in results] == ["grok_cases", "grok_arch", "grok_phases"]
    cases, arch, phases = results
    assert [c.case for c in cases.claims] == ["A0", "A1"]
    assert "accuracy_all_pairs" in cases.claims[0].ours and "mean_ipr" in cases.claims[0].ours
    assert [c.case for c in arch.claims] == ["T1", "D4"] and "all 3 seeds" in arch.claims[0].band
    every = cases.claims + arch.claims + phases.claims
    assert all(c.passed or c.miss for c in every), "a missed claim must say by how much"
    assert [c.case for c in phases.claims] == ["phases wd 0", "phases Coexistence", "phases Partial Inversion",
                                               "phases Full Inversion", "phases Memorization",
                                               "phases Full Inversion needs wd"]
    assert phases.numbers["wd"]["n_runs"] == 8
    for r in results:
        assert r.figures and not r.not_run
        for fig in r.figures:
            assert (tmp_path / "r" / fig.path).is_file(), fig.path
    data = json.loads(paths["json"].read_text())
    assert len(data["claims"]) == len(every) and "Grokking cases" in paths["md"].read_text()
    # the command line on the same folder (its stages cached): stdout is exactly one JSON object
    code, stdout, _err = run_cli(["reproduce", "--out", str(tmp_path / "r"), "--scale", "smoke", "--only", "grok",
                                 "--quiet"], capsys)
    printed = json.loads(stdout)
    assert stdout.count("\n") == 1 and code == (0 if printed["passed"] == printed["claims"] else 1)
    assert printed["claims"] == len(every) and printed["files"]["json"] == str(paths["json"])
    assert len(printed["missed"]) == printed["claims"] - printed["passed"] and printed["not_run"] == []


DEMO_RUN = Path(__file__).parents[2] / "docs/benchmarks/phases/demo_wd_p41"


def test_demo_panel_claims_pass_on_its_measured_run_and_lucky_cells_cannot_pass():
    """The demo's spec is the committed run's, its claims pass on that run, and a panel with one or two cells of a
    phase (or Full Inversion without weight decay) fails them."""
    from forgetlab.grok.sweep.tables import phase_counts
    from forgetlab.reproduce.stages.grok_phases import DEMO, _spec, demo_claims
    from forgetlab.runs import read_json

    committed = read_json(DEMO_RUN / "sweep.json")["spec"]
    spec = _spec(DEMO["spec"], "demo panel (small)")
    assert spec.fixed == committed["fixed"] and {k: list(v) for k, v in spec.grid.items()} == committed["grid"]
    counts = {label: dict(c) for label, c in phase_counts(DEMO_RUN)[1].items()}
    claims = demo_claims(counts)
    assert all(c.passed for c in claims), [c for c in claims if not c.passed]
    for phase in ("Partial Inversion", "Full Inversion", "Coexistence", "Memorization"):
        lucky = {label: {**c, phase: 0} for label, c in counts.items()}
        lucky["wd=12"][phase] = 2  # two lucky cells
        assert not all(c.passed for c in demo_claims(lucky)), phase
    leaky = {label: dict(c) for label, c in counts.items()}
    leaky["wd=0"]["Full Inversion"] = 1
    assert not next(c for c in demo_claims(leaky) if c.case == "phases Full Inversion needs wd").passed


def test_grok_arch_is_not_run_at_small_scale_and_the_report_says_how_to_run_it(tmp_path):
    from forgetlab.reproduce.render import render_markdown
    from forgetlab.reproduce.run import select_stages
    from forgetlab.reproduce.stages.grok_arch import grok_arch

    assert [s.name for s in select_stages("grok_arch")] == ["grok_arch"]
    res = grok_arch(tmp_path, "small", lambda f: None)
    assert res.not_run and not res.claims and any("--scale paper" in c for c in res.commands)
    md = render_markdown([res], {"scale": "small", "seconds": 1.0, "commands": [], "versions": {}})
    assert "not run at this scale: " + res.title in md and "**Not run:**" in md


def test_eco_stage_end_to_end(tmp_path):
    results, paths = reproduce(tmp_path / "r", scale="smoke", only="eco", quiet=True, argv=["reproduce"])
    (eco,) = results
    quantities = " | ".join(c.quantity for c in eco.claims)
    assert "model utility / target's" in quantities and "FPR, FNR" in quantities
    assert any(c.case == "MC forget subject" for c in eco.claims)
    assert all((tmp_path / "r" / f.path).is_file() for f in eco.figures)
    json.loads(paths["json"].read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))


def test_eco_claims_over_seeds_apply_the_band_to_the_mean_and_report_each_seed():
    from forgetlab.reproduce.stages.eco import _seeded_claims

    def rows(seed, eco_fq):
        base = {"split": "forget05", "seed": seed, "forget_Q_A_ROUGE": 0.3, "model_utility": 0.8,
                "classifier_fpr": 0.0, "classifier_fnr": 0.0}
        return [{**base, "method": "target", "protocol": "-", "forget_quality": 1e-6},
                {**base, "method": "retain", "protocol": "-", "forget_quality": 1.0},
                {**base, "method": "eco", "protocol": "deployment", "forget_quality": eco_fq}]

    config = {"splits": ["forget05"]}
    all_rows = rows(0, 0.3) + rows(1, 0.05) + rows(2, 0.1)  # mean 0.15 passes >= 0.1; seed 1 misses
    claims = _seeded_claims(all_rows, [], config, "name-free")
    fq = next(c for c in claims if c.case == "forget05 ECO" and "forget quality" in c.quantity)
    assert fq.passed and "FQ 0.15" in fq.ours and "1: FQ 0.05" in fq.ours and "seed(s) 1 outside" in fq.miss
    worse = _seeded_claims(rows(0, 0.1) + rows(1, 0.05), [], config, "name-free")
    fq = next(c for c in worse if c.case == "forget05 ECO" and "forget quality" in c.quantity)
    assert not fq.passed and "FQ 0.075" in fq.ours
    one = _seeded_claims(rows(0, 0.3), [], config, "name-free")
    assert all("per seed" not in c.ours for c in one)

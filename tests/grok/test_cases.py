import json

import pytest

from forgetlab.errors import BadInput
from forgetlab.grok.cases import CASES, bimodality_coefficient, case_configs, run_cases


def test_run_cases_small_writes_table_and_json(tmp_path):
    """Structure only (p=23 is not the paper's setting, so bands may fail here): A0 must pass."""
    fractions = []
    res = run_cases(tmp_path / "r", ["A0", "A4"], p=23, width=128, advance=fractions.append)
    assert fractions[-1] == 1.0 and fractions == sorted(fractions)
    assert [r.name for r in res] == ["A0", "A4"]
    assert res[0].passed and res[0].ours["accuracy_all_pairs"] == 1.0
    data = json.loads((tmp_path / "r" / "reproduce.json").read_text())
    assert [c["name"] for c in data["cases"]] == ["A0", "A4"]
    assert data["settings"] == {"p": 23, "width": 128, "matmul_precision": "fp32"} and data["machine"]["cpu"]
    for key in ("claim", "authors", "source", "ours", "band", "passed", "seconds", "figures"):
        assert key in data["cases"][1]
    md = (tmp_path / "r" / "reproduce.md").read_text()
    assert "| A4 |" in md and "78.55%" in md
    assert all((tmp_path / "r" / "A4" / f).exists() for f in ("summary.json", "accuracy.png", "ipr.png"))


def test_case_configs_follow_the_issue():
    c = case_configs()
    assert set(CASES) - {"A0", "A3"} <= set(c)
    assert (c["A5"].wd, c["A5"].steps, c["A5"].xi, c["A5"].alpha) == (15.0, 500, 0.35, 0.5)
    assert (c["A8"].batch_size, c["A8"].lr, c["A8"].steps, c["A8"].batchnorm) == (64, 0.005, 2000, True)
    assert c["A8n"].steps == 8000 and abs(c["A8n"].lr - 0.005) < 1e-12


def test_bimodality_and_bad_case(tmp_path):
    import torch

    two = torch.cat([torch.full((300,), 0.05), torch.full((100,), 0.85)]) + 0.01 * torch.randn(400)
    one = 0.3 + 0.05 * torch.randn(400)
    assert bimodality_coefficient(two) > 5 / 9 > bimodality_coefficient(one)
    with pytest.raises(BadInput):
        run_cases(tmp_path / "x", ["A42"])
    assert not (tmp_path / "x").exists()


def test_a8_and_a9_cite_the_official_notebook_with_one_point_bands():
    c = case_configs()
    assert (c["A9"].batch_size, c["A9"].lr, c["A9"].steps, c["A9"].batchnorm) == (64, 0.005, 2000, False)
    assert (c["A9"].alpha, c["A9"].xi) == (0.65, 0.2)
    from forgetlab.grok import cases

    assert "A9" in CASES and "A9" in cases._CHECKS
    import inspect

    src = inspect.getsource(cases._a8) + inspect.getsource(cases._a9)
    assert "unresolved" not in src and "80.43%" in src and "81.85%" in src and "1 point" in src


def test_arch_cases_structure_three_seeds_and_outputs(tmp_path):
    """Structure only at tiny sizes (the bands are meant for the paper's sizes)."""
    from forgetlab.grok.arch_cases import ARCH_CASES, arch_case_configs, run_arch_cases

    cfgs = arch_case_configs()
    assert set(cfgs) == set(ARCH_CASES) and all([c.seed for c in v] == [1, 2, 3] for v in cfgs.values())
    t, d = cfgs["T2"][0], cfgs["D4"][0]
    assert (t.model, t.act, t.lr, t.steps, t.loss, t.p) == ("transformer", "relu", 1e-3, 3000, "mse", 97)
    assert (d.depth, d.width, d.act, d.steps, d.batchnorm) == (3, 500, "relu", 5000, True)
    assert cfgs["T4"][0].layernorm and cfgs["T3"][0].dropout > 0 and cfgs["D3"][0].dropout > 0
    res = run_arch_cases(tmp_path / "a", ["T1", "D3"], p=7, width=8, steps={"transformer": 4, "deep": 4})
    assert [r.name for r in res] == ["T1", "D3"] and res[0].ours["n_seeds"] == 3
    assert res[0].passed == (res[0].ours["n_in_phase"] == 3)
    assert (tmp_path / "a" / "T1" / "seed3" / "summary.json").is_file()
    assert (tmp_path / "a" / "ipr_over_training.png").stat().st_size > 5000
    data = json.loads((tmp_path / "a" / "arch.json").read_text())
    assert [c["name"] for c in data["cases"]] == ["T1", "D3"] and len(data["configs"]["D3"]) == 3
    assert data["settings"] == {"cases": ["D3", "T1"]} and "torch" in data["versions"]


def test_arch_case_claims_follow_the_paper_and_need_every_seed():
    """Weight decay cases claim Full Inversion, the others must not reach it; one seed off fails a case."""
    from types import SimpleNamespace

    from forgetlab.grok.arch_cases import ARCH_CASES, NOT_FULL_INVERSION, _check, arch_case_configs

    assert "Full Inversion" not in NOT_FULL_INVERSION and "Memorization" in NOT_FULL_INVERSION
    assert {n for n, c in ARCH_CASES.items() if c.phases == ("Full Inversion",)} == {"T2", "D2"}
    assert ARCH_CASES["D4"].phases == ("Coexistence",) and ARCH_CASES["T3"].phases == ("Confusion",)
    cfgs = arch_case_configs(47)
    assert all((c.alpha, c.xi) == (0.8, 0.2) for cs in cfgs.values() for c in cs) and cfgs["T2"][0].wd == 50

    def fake(case, phases, configs=cfgs):
        return [SimpleNamespace(config=c, summary={"phase": ph, "train_acc": 1.0, "test_acc": 0.5,
                                                   "mean_ipr": 0.1}) for c, ph in zip(configs[case], phases, strict=True)]

    t1 = ARCH_CASES["T1"]
    assert _check(t1, fake("T1", ["Memorization", "Coexistence", "Confusion"])).passed
    assert not _check(t1, fake("T1", ["Memorization", "Full Inversion", "Memorization"])).passed
    d2 = ARCH_CASES["D2"]
    assert not _check(d2, fake("D2", ["Full Inversion", "Full Inversion", "Partial Inversion"])).passed
    assert "not Full Inversion" in _check(t1, fake("T1", ["Memorization"] * 3)).band
    assert "bf16" not in _check(t1, fake("T1", ["Memorization"] * 3)).claim
    bf16 = arch_case_configs(47, matmul_precision="bf16")  # the claim says when the products were bf16
    assert _check(t1, fake("T1", ["Memorization"] * 3, bf16)).claim.endswith("lr 0.001, bf16 products): not Full Inversion")
    small = arch_case_configs(47, matmul_precision="bf16", init_scale=0.25)  # and when the start was smaller
    assert all(c.init_scale == 0.25 for cs in small.values() for c in cs)
    assert _check(t1, fake("T1", ["Memorization"] * 3, small)).claim.endswith(
        "lr 0.001, initial weights x 0.25, bf16 products): not Full Inversion")


def test_arch_cases_resume_reads_back_finished_runs_and_retrains_the_rest(tmp_path, monkeypatch):
    """An interrupted call's finished runs (same config) are read back; a run with another config, one without
    its done-mark and a damaged one are trained again; the verdicts equal an uninterrupted call's."""
    import forgetlab.grok.arch_cases as ac

    tiny = dict(p=7, width=8, steps={"transformer": 4, "deep": 4})
    full = ac.run_arch_cases(tmp_path / "a", ["T1", "D3"], **tiny)
    (tmp_path / "a" / "T1" / "seed2" / "summary.json").unlink()  # interrupted while saving
    (tmp_path / "a" / "T1" / "seed1" / "accuracy.png").unlink()  # a run saved without plots
    (tmp_path / "a" / "D3" / "seed1" / "model.safetensors").write_bytes(b"damaged")
    cfg = json.loads((tmp_path / "a" / "D3" / "seed3" / "config.json").read_text())
    cfg["config"]["lr"] = 0.5  # an earlier call with another setting
    (tmp_path / "a" / "D3" / "seed3" / "config.json").write_text(json.dumps(cfg))
    trained = []
    real = ac.train_many
    monkeypatch.setattr(ac, "train_many", lambda cs, **kw: trained.extend((c.model, c.seed) for c in cs)
                        or real(cs, **kw))
    with pytest.raises(ac.BadInput, match="out"):
        ac.run_arch_cases(tmp_path / "a", ["T1", "D3"], **tiny)  # without resume a used folder is refused
    again = ac.run_arch_cases(tmp_path / "a", ["T1", "D3"], resume=True, **tiny)
    assert sorted(trained) == [("mlp", 1), ("mlp", 3), ("transformer", 2)]
    assert (tmp_path / "a" / "T1" / "seed1" / "accuracy.png").stat().st_size > 5000  # drawn for the report
    for a, b in zip(again, full, strict=True):  # batching other runs together may reorder float sums
        assert a.name == b.name and a.passed == b.passed and a.ours["phases"] == b.ours["phases"]
        assert {k: a.ours[k] for k in a.ours if k != "phases"} == pytest.approx(
            {k: b.ours[k] for k in b.ours if k != "phases"}, rel=1e-5)
    assert json.loads((tmp_path / "a" / "D3" / "seed3" / "config.json").read_text())["config"]["lr"] == 1e-3


def test_gamma_ipr_and_ipr_over_training_figures(tmp_path):
    from forgetlab.grok.config import TrainConfig
    from forgetlab.grok.plots import plot_gamma_ipr, plot_ipr_over_training
    from forgetlab.grok.train import train

    base = dict(p=13, width=16, alpha=0.8, batch_size=16, steps=20, log_every=5)
    bn, plain = train(TrainConfig(**base, batchnorm=True)), train(TrainConfig(**base))
    plot_gamma_ipr(bn, plain, tmp_path / "g.png")
    plot_ipr_over_training({"bn": bn.history, "plain": plain.history}, tmp_path / "i.png")
    assert (tmp_path / "g.png").stat().st_size > 5000 and (tmp_path / "i.png").stat().st_size > 5000

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

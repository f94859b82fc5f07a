"""``eco evaluate`` on every suite for a plain model and a guard: the same measurements; the guard changes only
what it flags; the base and retain models sit beside it; wrong layouts are one line, exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_runner import run_cli

from forgetlab.eco.classify.keyword import KeywordClassifier
from forgetlab.eco.guard import EcoGuard, GuardConfig
from forgetlab.eco.placement import CPU
from forgetlab.testing.tiny_lm import build_tiny_lm, build_tokenizer, save_lm
from forgetlab.unlearning.formats import write_layouts
from forgetlab.unlearning.formats.muse import load_muse
from forgetlab.unlearning.formats.tofu import load_tofu
from forgetlab.unlearning.formats.wmdp import load_wmdp
from forgetlab.unlearning.suites import EvalOptions, load_subject, run_evaluation
from forgetlab.unlearning.world import WorldConfig, make_world

OPTS = EvalOptions(max_new_tokens=3, batch_size=32)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("suites")
    w = make_world(WorldConfig(n_authors=12, facts_min=3, facts_max=4, n_painters=2, n_countries=2,
                               mc_per_subject=5, answer_style="name-free", seed=3))
    write_layouts(w, root / "data")
    tok = build_tokenizer()
    base = save_lm(build_tiny_lm("llama", tok, seed=1, hidden=32, layers=1), tok, root / "base")
    other = save_lm(build_tiny_lm("llama", tok, seed=2, hidden=32, layers=1), tok, root / "retain")
    keywords = [n.lower() for n in w.splits["forget10"]] + ["potion"]  # the forget authors and the alchemy subject
    guard = EcoGuard.from_base(base, KeywordClassifier(keywords), GuardConfig("rand_noise_first_n", 8.0, 32, 3))
    return {"world": w, "data": root / "data", "base": base, "retain": other,
            "guard": guard.save_pretrained(root / "guard")}


def test_guard_changes_only_what_it_flags(setup):
    plain, guarded = load_subject("base", setup["base"], CPU), load_subject("model", setup["guard"], CPU)
    assert plain.kind == "model" and guarded.kind == "guard"
    from forgetlab.unlearning.suites import SUITES

    tofu = load_tofu(setup["data"] / "tofu", "forget10")
    p, _ = SUITES.get("tofu").run(plain, tofu, OPTS, lambda s: None)
    g, _ = SUITES.get("tofu").run(guarded, tofu, OPTS, lambda s: None)
    assert p["utility_parts"] == g["utility_parts"]  # nothing of the utility sets names a forget author
    assert p["forget_Q_A_Prob"] != g["forget_Q_A_Prob"] and p["mia_auc"] != g["mia_auc"]
    from forgetlab.unlearning.muse_eval import text_token_logprobs

    muse = load_muse(setup["data"] / "muse")
    for part, changed in (("forget", True), ("holdout", False)):
        a = text_token_logprobs(plain, muse.privleak[part])
        b = text_token_logprobs(guarded, muse.privleak[part])
        same = [np.array_equal(x, y) for x, y in zip(a, b, strict=True)]
        assert (not any(same)) if changed else all(same)
    wmdp = load_wmdp(setup["data"] / "wmdp")
    p, _ = SUITES.get("wmdp").run(plain, wmdp, OPTS, lambda s: None)
    g, _ = SUITES.get("wmdp").run(guarded, wmdp, OPTS, lambda s: None)
    for subject in ("wmdp-astronomy", "wmdp-geology"):
        assert p["subjects"][subject] == g["subjects"][subject]
    assert set(p) == {"acc_choice", "acc_letter", "chance", "n", "subjects"} and p["chance"] == 0.25


@pytest.mark.parametrize("suite", ["tofu", "muse", "wmdp", "mmlu"])
def test_cli_scores_a_guard_beside_base_and_retain(setup, suite, tmp_path, capsys):
    code, out, err = run_cli(["eco", "evaluate", "--model", str(setup["guard"]), "--base-model", str(setup["base"]),
                              "--retain-model", str(setup["retain"]), "--suite", suite, "--data",
                              str(setup["data"] / suite), "--max-new-tokens", "3", "--device", "cpu",
                              "--shots", "1", "--out", str(tmp_path / "r.json")], capsys)
    assert code == 0, err
    printed = json.loads(out)
    rec = json.loads((tmp_path / "r.json").read_text())
    assert set(rec["metrics"]) == set(printed["metrics"]) == {"model", "base", "retain"}
    assert rec["subjects"]["model"]["kind"] == "guard" and rec["subjects"]["base"]["kind"] == "model"
    assert rec["config"]["options"]["shots"] == 1 and rec["versions"]["torch"]
    keys = {"tofu": {"forget_truth_ratio", "model_utility", "forget_Q_A_ROUGE", "exact_memorization",
                     "extraction_strength", "mia_loss", "mia_zlib", "mia_min_k", "mia_min_k_plus_plus"},
            "muse": {"verbmem_f", "knowmem_f", "knowmem_r", "mia_min_k"},
            "wmdp": {"acc_choice", "acc_letter"}, "mmlu": {"acc_choice", "acc_letter"}}[suite]
    assert keys <= set(rec["metrics"]["model"])
    if suite in ("tofu", "muse"):
        assert rec["vs_retain"]["retain"]["privleak"] == 0.0 and "privleak" in rec["vs_retain"]["model"]
    assert "\nmodel: " in err  # progress on stderr, results on stdout


def test_wrong_layout_is_one_line_exit_2(setup, capsys):
    for suite, words in (("tofu", "forget10_perturbed.json"), ("muse", "verbmem/forget.json"),
                         ("wmdp", "wmdp-bio"), ("mmlu", "test/<subject>_test.csv")):
        code, _, err = run_cli(["eco", "evaluate", "--model", str(setup["guard"]), "--suite", suite, "--data",
                                str(setup["data"] / "muse" / "raw")], capsys)
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    code, _, err = run_cli(["eco", "evaluate", "--model", str(setup["data"]), "--suite", "wmdp", "--data",
                            str(setup["data"] / "wmdp")], capsys)
    assert code == 2 and "model" in err and len(err.strip().splitlines()) == 1


def test_run_evaluation_record(setup):
    rec = run_evaluation("wmdp", setup["data"] / "wmdp", {"model": setup["guard"]}, CPU, OPTS)
    assert rec["config"]["suite"] == "wmdp" and rec["vs_retain"] == {}
    assert rec["metrics"]["model"]["n"] == sum(len(v) for v in setup["world"].mc.values())


def test_tofu_without_optional_parts_reports_what_is_missing(setup, tmp_path):
    only = tmp_path / "tofu"
    only.mkdir()
    (only / "forget10.json").write_text((setup["data"] / "tofu" / "forget10.json").read_text())
    rec = run_evaluation("tofu", only, {"model": setup["guard"]}, CPU, OPTS)
    m = rec["metrics"]["model"]
    assert {"forget_truth_ratio", "mia_*", "retain_*", "ra_*", "wf_*"} <= set(m["missing"])
    assert "model_utility" not in m and 0 < m["forget_Q_A_Prob"] < 1 and "forget_Q_A_ROUGE" in m

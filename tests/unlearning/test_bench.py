"""`--scale tiny` end to end (the bench table, both ECO protocols, the MC table) and the CLI's bad inputs."""

from __future__ import annotations

import io
import json
import math
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from types import SimpleNamespace

import pytest
from cli_runner import run_cli

from forgetlab.cli import main
from forgetlab.unlearning.bench.models import build_models
from forgetlab.unlearning.bench.scale import scale_config
from forgetlab.unlearning.bench.table import ROW_FIELDS
from forgetlab.unlearning.bench.tune import matching_epochs
from forgetlab.unlearning.formats import write_layouts
from forgetlab.unlearning.world import QA_FIELDS, make_world


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, cache_dir):
    """The tiny bench through the command line: what it printed on stdout, and the files it names."""
    out = tmp_path_factory.mktemp("bench") / "res"
    stdout, stderr = io.StringIO(), io.StringIO()
    with redirect_stdout(stdout), redirect_stderr(stderr), pytest.raises(SystemExit) as exc:
        main(["eco", "bench", "--scale", "tiny", "--answers", "name-free", "--out", str(out), "--cache",
              str(cache_dir), "--quiet"])
    assert exc.value.code == 0, stderr.getvalue()
    printed = json.loads(stdout.getvalue())  # stdout is exactly one JSON object
    assert stdout.getvalue().count("\n") == 1
    return SimpleNamespace(files={k: Path(v) for k, v in printed["files"].items()}, printed=printed)


def test_tiny_bench_records_its_models_and_guards(tiny):
    from forgetlab.eco.guard import EcoGuard

    data = json.loads(tiny.files["json"].read_text())
    models = data["config"]["models"]
    assert models == tiny.printed["models"] and (Path(models["target"]) / "config.json").is_file()
    assert set(models["retain"]) == {"forget10"} and "versions" in data
    guards = data["config"]["guards"]
    assert set(guards) == {"forget10/deployment", "forget10/paper"} and guards == tiny.printed["guards"]
    rule = EcoGuard.load_flag_rule(guards["forget10/deployment"])  # checksums verified: a usable guard folder
    assert rule.flag_entities


def test_tiny_bench_writes_the_table(tiny):
    files = tiny.files
    assert all(p.is_file() for p in files.values())
    data = json.loads(files["json"].read_text())
    rows = data["rows"]
    assert {(r["method"], r["protocol"]) for r in rows} == {
        ("target", "-"), ("retain", "-"), ("retain_reseed", "-"), ("eco", "deployment"), ("eco", "paper"),
        ("ga", "-"), ("gd", "-"), ("npo", "-"), ("rmu", "-")}
    for r in rows:
        assert set(ROW_FIELDS) <= set(r)
        assert 0 <= r["model_utility"] <= 1 and 0 <= r["forget_quality"] <= 1
    by = {(r["method"], r["protocol"]): r for r in rows}
    # the retain model is its own reference; the target was trained on the forget set and is detected by MIA
    assert by[("retain", "-")]["forget_quality"] == pytest.approx(1.0)
    assert by[("target", "-")]["mia_min_k"] > by[("retain", "-")]["mia_min_k"]
    assert by[("target", "-")]["forget_quality"] < 1.0
    # the reference row: another retain model (another training seed) against the first, with its own fluency
    reseed = by[("retain_reseed", "-")]
    assert reseed["train_seed"] == 1000 and reseed["forget_quality"] < 1.0
    assert data["config"]["reseeded_retain"] is True
    for r in rows:  # every row's generations judged by the retain model: a finite perplexity >= 1
        assert r["forget_gen_ppl"] >= 1.0
    eco = by[("eco", "deployment")]
    assert math.isfinite(eco["classifier_fpr"]) and math.isfinite(eco["classifier_fnr"])
    assert eco["strength"] > 0 and eco["fit"]["fit_set_size"] > 0
    # the flag rule ORs forget-name matches into the classifier: it can only miss less
    assert eco["classifier_fnr"] <= eco["classifier_only_fnr"]
    # the corruption is the candidate closest to the holdout surrogate, and every candidate is on record with
    # the strengths its search evaluated (within the scale's budget)
    cands = eco["fit"]["candidates"]
    assert eco["corruption"] in cands and len(cands) == 4
    assert cands[eco["corruption"]]["distance"] == min(c["distance"] for c in cands.values())
    assert all(c["distance"] == max(c["ks_statistic"], c["ks_prob"]) for c in cands.values())
    assert all(1 <= len(c.get("searched", [[1, 0]])) <= 8 for c in cands.values())
    md = files["md"].read_text()
    assert "## forget10" in md and "Multiple choice" in md and "deployment" in md and "paper" in md
    assert [r["method"] for r in data["mc_rows"]] == ["target", "eco"]
    assert files["png"].read_bytes()[:4] == b"\x89PNG"
    assert data["timings"]["total"] > 0 and "versions" in data


def test_cli_world_and_evaluate(tmp_path, capsys, tiny, cache_dir):
    code, out, err = run_cli(["eco", "world", "--out", str(tmp_path / "w"), "--authors", "20", "--answers",
                           "name-free"], capsys)
    assert code == 0, err
    printed = json.loads(out)  # stdout is exactly one JSON object
    assert printed["forget_split_sizes"]["forget10"] > 0 and "tofu" in printed["layouts"]
    assert (tmp_path / "w" / "tofu" / "forget10_perturbed.json").is_file()
    assert (tmp_path / "w" / "muse" / "verbmem" / "forget.json").is_file()
    # evaluate the tiny target model on the tiny world's data (its tokenizer covers it)
    s = scale_config("tiny", "name-free")
    w = make_world(s.world)
    write_layouts(w, tmp_path / "d", ("tofu",))
    models = build_models(w, s, cache_dir)  # cache hits: the bench trained them
    target, retain = str(models.target), str(models.retain["forget10"])
    code, out, err = run_cli(["eco", "evaluate", "--model", target, "--retain-model", retain, "--suite", "tofu",
                              "--data", str(tmp_path / "d" / "tofu"), "--no-generate", "--device", "cpu",
                              "--out", str(tmp_path / "m.json")], capsys)
    assert code == 0, err
    rec = json.loads((tmp_path / "m.json").read_text())
    m = rec["metrics"]["model"]
    assert json.loads(out)["metrics"]["model"]["model_utility"] == round(m["model_utility"], 4)  # stdout: JSON only
    assert err  # the progress lines went to stderr
    assert 0 <= m["model_utility"] <= 1 and "mia_min_k_plus_plus" in m["mia_auc"]
    assert rec["vs_retain"]["retain"]["forget_quality"] == pytest.approx(1.0)
    assert rec["vs_retain"]["model"]["forget_quality"] < 1.0 and rec["config"]["placement"]["device"] == "cpu"
    # bad inputs: one line, exit 2
    f = tmp_path / "d" / "tofu" / "forget10_perturbed.json"
    lines = f.read_text().splitlines()
    row = json.loads(lines[1])
    del row["perturbed_answer"]
    f.write_text("\n".join([lines[0], json.dumps(row), *lines[2:]]) + "\n")
    code, _out, err = run_cli(["eco", "evaluate", "--model", target, "--suite", "tofu", "--data",
                               str(tmp_path / "d" / "tofu")], capsys)
    assert code == 2 and "forget10_perturbed.json: line 2: missing field 'perturbed_answer'" in err
    assert len(err.strip().splitlines()) == 1
    # a tokenizer that cannot encode the data
    write_layouts(w, tmp_path / "e", ("tofu",))
    p = tmp_path / "e" / "tofu" / "world_facts_perturbed.json"
    p.write_text(p.read_text().replace("capital", "capitâl☃"))
    code, _, err = run_cli(["eco", "evaluate", "--model", target, "--suite", "tofu", "--data",
                            str(tmp_path / "e" / "tofu"), "--quiet"], capsys)
    assert code == 2 and "world_facts line" in err and "cannot encode" in err
    assert len(err.strip().splitlines()) == 1


def test_cli_bad_inputs(tmp_path, capsys):
    code, _, err = run_cli(["eco", "bench", "--out", str(tmp_path / "b"), "--methods", "eco,simnpo"], capsys)
    assert code == 2 and "simnpo" in err and "rmu" in err
    code, _, err = run_cli(["eco", "bench", "--out", str(tmp_path / "b"), "--scale", "huge"], capsys)
    assert code == 2 and "tiny" in err
    assert err.startswith("error: scale:") and err.count("\n") == 1  # the progress display printed a blank line
    assert not (tmp_path / "b" / "results.json").exists()
    # an empty forget split / a forget split overlapping the holdout
    w = make_world(scale_config("tiny", "name-free").world)
    write_layouts(w, tmp_path / "d", ("tofu",))
    d = tmp_path / "d" / "tofu"
    (d / "forget10_perturbed.json").write_text("")
    evaluate = ["eco", "evaluate", "--model", str(tmp_path), "--suite", "tofu", "--data", str(d)]
    code, _, err = run_cli(evaluate, capsys)
    assert code == 2 and "empty" in err
    hold = (d / "holdout10.json").read_text()
    (d / "forget10_perturbed.json").unlink()
    (d / "forget10.json").write_text(hold)
    code, _, err = run_cli(evaluate, capsys)
    assert code == 2 and "holdout" in err
    for bad, words in ((["--suite", "imdb"], ["suite", "mmlu"]), (["--dtype", "int8"], ["dtype", "bfloat16"]),
                       (["--device", "tpu"], ["device", "cuda:N"]), (["--split", "forget20"], ["split"])):
        code, _, err = run_cli(evaluate + bad, capsys)
        assert code == 2 and all(x in err for x in words), err
    assert set(QA_FIELDS) >= {"question", "answer"}


def test_tiny_bench_tunes_each_baseline_once_and_records_it(tiny):
    data = json.loads(tiny.files["json"].read_text())
    tuning = data["config"]["per_seed"]["0"]["baseline_tuning"]
    grid = [list(p) for p in scale_config("tiny", "name-free").tune_grid]
    assert set(tuning) == {"ga", "gd", "npo", "rmu"} and data["config"]["tune"] is True
    text = tiny.files["md"].read_text()
    assert "## Baselines' learning rate and epochs" in text
    for method, rec in tuning.items():
        assert rec["grid"] == grid and len(rec["points"]) == len(grid)
        for p in rec["points"]:
            assert 0 <= p["ks_statistic"] <= 1 and p["floor_ratio"] > 0 and p["seconds"] > 0
        chosen = rec["points"][rec["chosen_index"]]
        assert rec["fallback"] or chosen["floor_ratio"] >= rec["floor_fraction"]
        row_ = next(r for r in data["rows"] if r["method"] == method)
        used, n_forget = row_["unlearn"]["config"], row_["unlearn"]["n_forget"]
        assert (chosen["lr"], chosen["epochs"]) == tuple(rec["chosen"].values())
        # the split runs as many updates as the chosen point made on the proxy
        assert (used["lr"], used["epochs"]) == (chosen["lr"], matching_epochs(chosen["epochs"],
                                                                             rec["proxy_forget_set"], n_forget))
        assert f"- seed 0, {method}: lr {chosen['lr']:g}, {chosen['epochs']} epochs: " in text
        assert "baseline tuning floor set" in data["config"]["heldout_check"]["0"]["forget10"]["fit_sets"]
        assert f"seed0/{method}/tune" in data["timings"]


def test_results_record_machine_and_summary(tiny):
    data = json.loads(tiny.files["json"].read_text())
    m = data["machine"]
    assert m["torch_threads"] >= 1 and m["torch"] and m["cpu_model"] and len(m["load_average"]) == 3
    assert data["config"]["seeds"] == [0] and all(r["seed"] == 0 for r in data["rows"])
    s = {(r["method"], r["protocol"]): r for r in data["summary"]}
    assert s[("target", "-")]["forget_quality"]["mean"] == next(
        r["forget_quality"] for r in data["rows"] if r["method"] == "target")
    assert s[("target", "-")]["forget_quality"]["n"] == 1


def test_bench_report_renders_the_results_file(tiny, tmp_path, capsys):
    page = tmp_path / "unlearning.md"
    code, out, err = run_cli(["eco", "bench-report", str(tiny.files["json"]), "--out", str(page)], capsys)
    assert code == 0, err
    assert json.loads(out)["file"] == str(page)
    text = page.read_text()
    assert text == tiny.files["md"].read_text()  # the bench's results.md is the same rendering
    data = json.loads(tiny.files["json"].read_text())
    assert data["machine"]["cpu_model"] in text and "threads" in text and "load average" in text
    assert "forgetlab eco bench --scale tiny --answers name-free --seeds 0" in text
    target = next(r for r in data["rows"] if r["method"] == "target")
    from forgetlab.fmt import fmt

    assert f"| target | - | {fmt(target['forget_quality'], '3f')} |" in text
    for bad in ([str(tmp_path / "missing.json")], [str(page)]):  # unreadable / not a bench results file
        code, _, err = run_cli(["eco", "bench-report", *bad, "--out", str(tmp_path / "x.md")], capsys)
        assert code == 2 and "results" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.md").exists()


def test_summary_and_report_over_seeds():
    from forgetlab.unlearning.bench.report import render_report
    from forgetlab.unlearning.bench.summary import mean_sd, summarize

    assert mean_sd([1.0, 2.0, 3.0])["sd"] == pytest.approx(1.0) and mean_sd([1.0])["n"] == 1
    assert math.isnan(mean_sd([1.0])["sd"]) and mean_sd([float("nan"), 2.0])["mean"] == 2.0
    rows = [{"split": "forget10", "method": m, "protocol": "-", "seed": k, "forget_quality": fq,
             "model_utility": 0.5 + k / 10, "privleak": -10.0 * k} for k, (m, fq) in
            enumerate([("ga", 0.2), ("ga", 0.4), ("ga", 0.3)])]
    summ = summarize(rows)
    assert len(summ) == 1 and summ[0]["forget_quality"]["mean"] == pytest.approx(0.3)
    assert summ[0]["forget_quality"]["sd"] == pytest.approx(0.1) and summ[0]["worst_seed_forget_quality"] == 0
    res = {"config": {"scale": "tiny", "answers": "name-free", "methods": ["ga"], "seeds": [0, 1, 2]},
           "rows": rows, "summary": summ, "timings": {"total": 1.0}, "machine": {"load_average": [0.1, 0.1, 0.1]}}
    text = render_report(res)
    assert "0.300 +- 0.100" in text and "seed 2" in text and "--seeds 0,1,2" in text


def test_cli_bad_seeds(tmp_path, capsys):
    for bad in ("0,x", "1,1", "", "-1"):
        code, _, err = run_cli(["eco", "bench", "--out", str(tmp_path / "b"), "--seeds", bad], capsys)
        assert code == 2 and "--seeds" in err and len(err.strip().splitlines()) == 1, (bad, err)
    assert not (tmp_path / "b").exists()


def _as_seed(rec: dict, seed: int, shift: float) -> dict:
    """The tiny run's record relabelled as another seed's run, its forget quality moved by ``shift``."""
    rec = json.loads(json.dumps(rec))
    for r in rec["rows"] + rec["mc_rows"]:
        r["seed"] = seed
    for r in rec["rows"]:
        r["forget_quality"] += shift
    c = rec["config"]
    c["seeds"] = c["seeds_requested"] = [seed]
    c["world"]["seed"] = c["train"]["seed"] = seed
    for k in ("per_seed", "heldout_check"):
        c[k] = {str(seed): v for v in c[k].values()}
    rec["timings"] = {(f"seed{seed}/" + k.split("/", 1)[1] if k.startswith("seed") else k): v
                      for k, v in rec["timings"].items()}
    rec["training"] = {str(seed): v for v in rec["training"].values()}
    return rec


def test_bench_merge_joins_runs_of_other_seeds(tiny, tmp_path, capsys):
    base = json.loads(tiny.files["json"].read_text())
    one = tmp_path / "one.json"
    one.write_text(json.dumps(_as_seed(base, 1, 0.1)))
    code, out, err = run_cli(["eco", "bench-merge", str(tiny.files["json"]), str(one), "--out",
                              str(tmp_path / "m")], capsys)
    assert code == 0, err
    merged = json.loads((tmp_path / "m" / "results.json").read_text())
    assert json.loads(out)["seeds"] == [0, 1] == merged["config"]["seeds"]
    assert len(merged["rows"]) == 2 * len(base["rows"]) and set(merged["training"]) == {"0", "1"}
    target = next(s for s in merged["summary"] if s["method"] == "target")
    fq0 = next(r["forget_quality"] for r in base["rows"] if r["method"] == "target")
    assert target["forget_quality"]["n"] == 2 and target["forget_quality"]["mean"] == pytest.approx(fq0 + 0.05)
    assert target["worst_seed_forget_quality"] == 0 and len(merged["machine"]["runs"]) == 2
    text = (tmp_path / "m" / "results.md").read_text()
    assert "forgetlab eco bench-merge DIR_0/results.json DIR_1/results.json --out DIR" in text and "seed 1" in text


def test_bench_merge_refuses_runs_that_differ(tiny, tmp_path, capsys):
    base = json.loads(tiny.files["json"].read_text())
    other = _as_seed(base, 1, 0.0)
    other["config"]["answers"] = "tofu"
    cases = {"same seed twice": base, "other answers": other}
    for name, rec in cases.items():
        f = tmp_path / f"{name}.json"
        f.write_text(json.dumps(rec))
        code, _, err = run_cli(["eco", "bench-merge", str(tiny.files["json"]), str(f), "--out",
                                str(tmp_path / "m")], capsys)
        assert code == 2 and "results" in err and len(err.strip().splitlines()) == 1, (name, err)
        assert ("seed 0" in err) if name == "same seed twice" else ("answers" in err)
    code, _, err = run_cli(["eco", "bench-merge", str(tiny.files["json"]), "--out", str(tmp_path / "m")], capsys)
    assert code == 2 and "two or more" in err
    assert not (tmp_path / "m").exists()

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
        ("target", "-"), ("retain", "-"), ("eco", "deployment"), ("eco", "paper"), ("ga", "-"), ("gd", "-"),
        ("npo", "-")}
    for r in rows:
        assert set(ROW_FIELDS) <= set(r)
        assert 0 <= r["model_utility"] <= 1 and 0 <= r["forget_quality"] <= 1
    by = {(r["method"], r["protocol"]): r for r in rows}
    # the retain model is its own reference; the target was trained on the forget set and is detected by MIA
    assert by[("retain", "-")]["forget_quality"] == pytest.approx(1.0)
    assert by[("target", "-")]["mia_min_k"] > by[("retain", "-")]["mia_min_k"]
    assert by[("target", "-")]["forget_quality"] < 1.0
    eco = by[("eco", "deployment")]
    assert math.isfinite(eco["classifier_fpr"]) and math.isfinite(eco["classifier_fnr"])
    assert eco["strength"] > 0 and eco["fit"]["fit_set_size"] > 0
    # the flag rule ORs forget-name matches into the classifier: it can only miss less
    assert eco["classifier_fnr"] <= eco["classifier_only_fnr"]
    # the corruption is the candidate closest to the holdout surrogate, and every candidate is on record
    cands = eco["fit"]["candidates"]
    assert eco["corruption"] in cands and len(cands) == 3
    assert cands[eco["corruption"]]["ks_statistic"] == min(c["ks_statistic"] for c in cands.values()
                                                           if "excluded" not in c)
    assert all(("excluded" in c) == (c.get("converged") is False) for c in cands.values())
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
    code, _, err = run_cli(["eco", "bench", "--out", str(tmp_path / "b"), "--methods", "eco,rmu"], capsys)
    assert code == 2 and "rmu" in err and "npo" in err
    code, _, err = run_cli(["eco", "bench", "--out", str(tmp_path / "b"), "--scale", "huge"], capsys)
    assert code == 2 and "tiny" in err
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

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runner import run_cli

TINY = ["--p", "13", "--width", "16", "--steps", "20", "--log-every", "5", "--quiet"]


def test_train_prune_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = run_cli(["grok", "train", *TINY, "--wd", "1", "--out", str(out)], capsys)
    assert code == 0, err
    # stdout is exactly the result: one JSON object, the run's summary
    assert stdout.count("\n") == 1 and json.loads(stdout) == json.loads((out / "summary.json").read_text())
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "history.jsonl", "model.safetensors", "summary.json", "accuracy.png",
            "ipr.png"} <= names
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"train_acc", "test_acc", "corrupted_acc", "clean_acc", "inversion_acc",
                            "mean_ipr", "weight_norm", "phase", "steps", "seconds", "n_corrupted",
                            "n_corrupted_unchanged", "weight_norm_init"}
    hist = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in hist] == [0, 5, 10, 15, 20]
    code, stdout, err = run_cli(["grok", "prune", str(out)], capsys)
    assert code == 0, err
    prune = json.loads((out / "prune.json").read_text())
    assert stdout.count("\n") == 1 and json.loads(stdout)["curves"] == prune
    assert set(prune) == {"low", "high", "random"} and (out / "prune.png").stat().st_size > 1000
    # refusing a non-empty folder, accepting it with --overwrite
    code, _, err = run_cli(["grok", "train", *TINY, "--out", str(out)], capsys)
    assert code == 2 and "out" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(["grok", "train", *TINY, "--out", str(out), "--overwrite"], capsys)
    assert code == 0, err


def test_analytic_command(capsys):
    code, stdout, err = run_cli(["grok", "analytic", "--p", "23", "--width", "128"], capsys)
    assert code == 0, err
    assert stdout.count("\n") == 1
    res = json.loads(stdout)
    assert res["accuracy"] == 1.0 and res["mean_ipr"] > 0.99


@pytest.mark.parametrize("flags,field", [
    (["--p", "21", "--op", "div"], "p"), (["--alpha", "1.0"], "alpha"), (["--xi", "-0.1"], "xi"),
    (["--width", "0"], "width"), (["--steps", "0"], "steps"), (["--op", "pow"], "op"),
    (["--act", "tanh"], "act"), (["--model", "rnn"], "model"), (["--loss", "hinge"], "loss"),
    (["--matmul-precision", "fp16"], "matmul_precision"),
])
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys, flags, field):
    out = tmp_path / "never"
    code, _, err = run_cli(["grok", "train", "--out", str(out), "--quiet", *flags], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and field in err
    assert "Traceback" not in err and not out.exists()


def test_unwritable_output_folder(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run_cli(["grok", "train", *TINY, "--out", str(blocker / "sub")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_prune_refuses_corrupted_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(["grok", "train", *TINY, "--out", str(out)], capsys)[0] == 0
    data = (out / "model.safetensors").read_bytes()
    (out / "model.safetensors").write_bytes(data[:40] + b"garbage" + data[60:200])
    code, _, err = run_cli(["grok", "prune", str(out)], capsys)
    assert code == 2 and "model.safetensors" in err and len(err.strip().splitlines()) == 1
    assert not (out / "prune.json").exists()


def test_reproduce_prints_only_its_json_result(tmp_path, capsys):
    code, stdout, err = run_cli(["grok", "reproduce", "--out", str(tmp_path / "r"), "--cases", "A0"], capsys)
    assert code == 0, err
    res = json.loads(stdout)
    assert stdout.count("\n") == 1 and res["passed"] and [c["case"] for c in res["cases"]] == ["A0"]
    assert all(Path(f).is_file() for f in res["files"]) and "A0 PASS" in err  # the human summary on stderr


def test_reproduce_rejects_unknown_case(tmp_path, capsys):
    code, _, err = run_cli(["grok", "reproduce", "--out", str(tmp_path / "r"), "--cases", "A1,T9"], capsys)
    assert code == 2 and "cases" in err and "T9" in err and "D4" in err and len(err.strip().splitlines()) == 1
    for empty in ("", " , "):  # an empty list is refused (it ran all ten A cases)
        code, _, err = run_cli(["grok", "reproduce", "--out", str(tmp_path / "r"), "--cases", empty], capsys)
        assert code == 2 and err.startswith("error: cases:") and "one or more" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("cases,scale,allowed", [("D1", "0", "a number in"), ("A0,D1", "0.5", "A cases")])
def test_reproduce_refuses_a_bad_or_misapplied_init_scale(tmp_path, capsys, cases, scale, allowed):
    code, _, err = run_cli(["grok", "reproduce", "--out", str(tmp_path / "r"), "--cases", cases, "--init-scale",
                            scale], capsys)
    assert code == 2 and "init_scale" in err and allowed in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_console_script_entry_point(tmp_path):
    res = subprocess.run([sys.executable, "-m", "forgetlab.cli", "grok", "analytic", "--width", "0"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and res.stderr.count("\n") == 1


@pytest.mark.parametrize("arch", [["--model", "transformer", "--act", "relu", "--layernorm"],
                                  ["--depth", "3", "--act", "relu", "--batchnorm", "--batch-size", "16"]])
def test_train_other_architectures_and_prune_refuses_them(tmp_path, capsys, arch):
    out = tmp_path / "run"
    tiny = [a for a in TINY if a not in ("--width", "16")] if "transformer" in arch else TINY  # d is fixed
    code, stdout, err = run_cli(["grok", "train", *tiny, *arch, "--out", str(out)], capsys)
    assert code == 0, err
    assert json.loads(stdout.strip().splitlines()[-1])["phase"]
    code, _, err = run_cli(["grok", "prune", str(out)], capsys)
    assert code == 2 and ("model" in err or "depth" in err) and len(err.strip().splitlines()) == 1


def test_prune_evaluates_a_batchnorm_run_where_its_batchnorm_sits(tmp_path, capsys):
    """With nothing pruned, the curves of a run with BatchNorm before the activation give the run's own
    accuracies; evaluated with BatchNorm after it (the default), they would not."""
    from forgetlab.grok.data import make_dataset
    from forgetlab.grok.prune import evaluate_states
    from forgetlab.grok.record import load_config, load_state
    from forgetlab.runs import read_json

    out = tmp_path / "pre"
    args = ["--p", "11", "--width", "16", "--steps", "40", "--lr", "0.01", "--alpha", "0.6", "--batchnorm",
            "--batchnorm-placement", "pre", "--log-every", "40", "--quiet", "--out", str(out)]
    assert run_cli(["grok", "train", *args], capsys)[0] == 0
    assert run_cli(["grok", "prune", str(out)], capsys)[0] == 0
    summary, first = read_json(out / "summary.json"), read_json(out / "prune.json")["low"][0]
    assert first["fraction"] == 0 and (first["train_acc"], first["test_acc"]) == (summary["train_acc"],
                                                                                   summary["test_acc"])
    cfg = load_config(out)
    ds = make_dataset(cfg.p, cfg.op, cfg.alpha, cfg.xi, split_seed=cfg.split_seed, label_seed=cfg.label_seed)
    post = evaluate_states([load_state(out)], ds, cfg.act)[0]
    assert (post["train_acc"], post["test_acc"]) != (summary["train_acc"], summary["test_acc"])


def test_reproduce_passes_the_initial_scale_to_the_app_g_cases(tmp_path, capsys, monkeypatch):
    import forgetlab.grok.arch_cases as ac

    seen = {}
    monkeypatch.setattr(ac, "run_arch_cases", lambda *a, **kw: seen.update(kw) or [])
    code, _, err = run_cli(["grok", "reproduce", "--out", str(tmp_path / "r"), "--cases", "D1", "--init-scale",
                            "0.25", "--quiet"], capsys)
    assert code == 0, err
    assert seen["init_scale"] == 0.25


def test_a_diverged_run_is_flagged_and_not_pruned(tmp_path, capsys):
    """lr 1e30: the run is written, labelled Diverged with its step, a warning says so even with --quiet, and
    pruning refuses it (NaN weights have no IPR order), also when the label was edited away."""
    out = tmp_path / "run"
    code, stdout, err = run_cli(["grok", "train", *TINY, "--lr", "1e30", "--out", str(out)], capsys)
    assert code == 0, err
    summary = json.loads(stdout)
    assert (summary["phase"], summary["diverged_step"]) == ("Diverged", 5)
    assert err.startswith("warning: 1 of 1 runs diverged") and "--lr" in err
    code, _, err = run_cli(["grok", "prune", str(out)], capsys)
    assert code == 2 and "RUN_DIR" in err and "diverge" in err and len(err.strip().splitlines()) == 1
    (out / "summary.json").write_text(json.dumps(summary | {"phase": "Confusion"}))
    code, _, err = run_cli(["grok", "prune", str(out)], capsys)
    assert code == 2 and "NaN" in err and len(err.strip().splitlines()) == 1
    (out / "summary.json").write_text("[]")  # valid JSON, not a summary: was an AttributeError traceback
    code, _, err = run_cli(["grok", "prune", str(out)], capsys)
    assert code == 2 and err.startswith("error: RUN_DIR:") and len(err.strip().splitlines()) == 1
    assert not (out / "prune.json").exists()


def test_a_corruption_fraction_that_rounds_to_no_label_is_warned_about(tmp_path, capsys):
    """p 23, alpha 0.002: one training pair, and xi 0.99 of it corrupts none; the run is fine but has no forget
    set, which the user asked for: a warning says so (it was silent)."""
    code, stdout, err = run_cli(["grok", "train", "--p", "23", "--alpha", "0.002", "--xi", "0.99", "--steps", "2",
                                 "--width", "8", "--quiet", "--out", str(tmp_path / "r")], capsys)
    assert code == 0 and json.loads(stdout)["n_corrupted"] == 0
    assert err.startswith("warning: xi 0.99 of 1 training pairs") and "no forget set" in err
    code, _, err = run_cli(["grok", "train", *TINY, "--out", str(tmp_path / "s")], capsys)
    assert code == 0 and err == ""

"""`forgetlab eco fit/classify/generate` end to end, and every bad input of the issue -> one line, exit 2."""

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import asdict

import pytest
from cli_data import write_inputs, write_jsonl
from cli_runner import run_cli

from forgetlab.cli import main
from forgetlab.testing.tiny_lm import save_lm


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, color_lm):
    model, tok, items = color_lm
    root = tmp_path_factory.mktemp("cli")
    paths = write_inputs(root)
    paths["model"] = save_lm(model, tok, root / "model")
    # every fourth person likes each color, so a model that cannot tell who is asked scores 1/4 on any
    # 4-aligned block: items[::2] would hold only two colors and make "chance" unreachable
    fit = [{**asdict(it), "choices": list(it.choices)} for it in items[:32]]
    paths["fit"] = write_jsonl(root / "fit.jsonl", fit)
    return paths


def fit_args(p, out, **over):
    args = {"--model": p["model"], "--forget": p["forget"], "--retain": p["retain"], "--fit": p["fit"],
            "--corruption": "rand_noise_first_n", "--target": "chance", "--tol": "0.1", "--fpr": "0.1",
            "--out": out, **over}
    argv = ["eco", "fit", "--quiet"]
    for key, val in args.items():
        if val is not None:
            argv += [key] if val == "" else [key, str(val)]  # "" marks a flag without a value
    return argv


@pytest.fixture(scope="module")
def fitted(inputs, tmp_path_factory):
    """(guard folder, what `eco fit` printed on stdout); --out is an existing empty folder (accepted, as a new
    one is)."""
    out = tmp_path_factory.mktemp("g") / "guard"
    out.mkdir()
    stdout, stderr = io.StringIO(), io.StringIO()
    with redirect_stdout(stdout), redirect_stderr(stderr), pytest.raises(SystemExit) as exc:
        main(fit_args(inputs, out))
    assert exc.value.code == 0, stderr.getvalue()
    return out, stdout.getvalue()


@pytest.fixture(scope="module")
def guard_dir(fitted):
    return fitted[0]


def test_fit_prints_only_its_json_result(fitted):
    out, stdout = fitted
    assert stdout.count("\n") == 1
    res = json.loads(stdout)
    meta = json.loads((out / "guard.json").read_text())
    assert res["guard"] == str(out) and res["strength"] == meta["config"]["strength"]


def test_fit_classify_generate(guard_dir, capsys):
    meta = json.loads((guard_dir / "guard.json").read_text())
    assert meta["fit"]["converged"] and abs(meta["fit"]["metric"] - 0.25) <= 0.1
    assert meta["config"]["strength"] > 0 and meta["fit"]["fit_set_size"] == 32
    assert meta["fit"]["fit_file"].endswith("fit.jsonl") and len(meta["fit"]["fit_set_sha256"]) == 64
    code, out, err = run_cli(["eco", "classify", "--guard", str(guard_dir), "--prompt", "Where was Zorblax Quint born?",
                          "--prompt", "What is the capital of Peru?"], capsys)
    assert code == 0, err
    rows = [json.loads(x) for x in out.splitlines()]
    assert [r["flagged"] for r in rows] == [True, False]
    code, out, err = run_cli(["eco", "generate", "--guard", str(guard_dir), "--prompt", "Who is Zorblax Quint?",
                          "--prompt", "What is the capital of Peru?", "--max-new-tokens", "3"], capsys)
    assert code == 0, err
    lines = out.splitlines()  # exactly one line per prompt
    assert len(lines) == 2 and out.endswith("\n")
    assert lines[0].startswith("[flagged: yes]") and lines[1].startswith("[flagged: no] What is the capital of Peru?\t")
    assert all(line.count("\t") == 1 for line in lines)  # the answer was glued to the prompt
    code, out, err = run_cli(["eco", "generate", "--guard", str(guard_dir), "--prompt", "Who is Zorblax Quint?",
                              "--max-new-tokens", "3", "--json", "--quiet"], capsys)
    assert code == 0 and err == ""
    assert [json.loads(x)["flagged"] for x in out.splitlines()] == [True]


def _bad(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_bad_inputs_one_line_exit_2(inputs, guard_dir, tmp_path, capsys):
    out = tmp_path / "never"
    noweights = tmp_path / "noweights"
    noweights.mkdir()
    (noweights / "config.json").write_text((inputs["model"] / "config.json").read_text())
    cases = [
        ({"--forget": _bad(tmp_path, "empty.jsonl", "")}, "empty"),
        ({"--forget": _bad(tmp_path, "broken.jsonl", '{"prompt": "a"}\n{"prompt": \n')}, "line 2"),
        ({"--retain": _bad(tmp_path, "empty2.jsonl", "\n\n")}, "empty"),
        ({"--fit": _bad(tmp_path, "fit.jsonl", '{"prompt": "x", "choices": ["a"], "answer": 0}\n')},
         "line 1.choices"),
        ({"--model": noweights}, "weights"),
        ({"--model": tmp_path / "missing"}, "model"),
        ({"--corruption": "nope"}, "rand_noise_first_n"),
        ({"--k": "33"}, "k: got 33"),
        ({"--strength": "-1", "--fit": None}, "strength: got -1.0"),
        ({"--strength": "0", "--fit": None}, "no --fit"),
        ({"--fpr": "0"}, "fpr"),
        ({"--fpr": "1.5"}, "fpr"),
        ({"--target": "lots"}, "target"),
        ({"--target": "1.5"}, "target: got '1.5'; allowed: 'chance' or a number in [0, 1]"),  # saved a no-op guard
        ({"--k": "0", "--strength": "1", "--fit": None}, "k: got 0; allowed: an integer >= 1"),  # corrupted nothing
        ({"--k": "-2"}, "k: got -2; allowed: an integer >= 0"),  # refused before the model loads
        ({"--forget": tmp_path / "none.jsonl"}, "forget: got"),  # named 'path'
        ({"--calibration": tmp_path / "none.jsonl"}, "calibration: got"),
        ({"--classifier-precision": "fp8"}, "classifier_precision: got 'fp8'"),  # named 'precision'
    ]
    for over, needle in cases:
        code, _, err = run_cli(fit_args(inputs, out, **over), capsys)
        assert code == 2, (over, err)
        assert err.count("\n") == 1 and "Traceback" not in err and needle in err, (over, err)
        assert not out.exists(), "nothing may be half-written"
    # a guard folder whose files no longer match their checksums
    clf = guard_dir / "classifier" / "classifier.json"
    saved = clf.read_text()
    try:
        clf.write_text(saved.replace('"threshold"', '"threshold" ', 1))
        code, _, err = run_cli(["eco", "classify", "--guard", str(guard_dir), "--prompt", "hi"], capsys)
        assert code == 2 and "checksum" in err and err.count("\n") == 1
    finally:
        clf.write_text(saved)
    code, _, err = run_cli(["eco", "classify", "--guard", str(tmp_path / "nope"), "--prompt", "hi"], capsys)
    assert code == 2 and "guard" in err


def test_fit_with_flag_entities_flags_any_prompt_naming_the_target(inputs, tmp_path, capsys):
    """--flag-entities: the guard is saved with the classifier-OR-name rule and the mined names (the rule itself
    is tested against a classifier that misses in tests/eco/test_guard.py); without --entity-level the whole
    prompt is corrupted."""
    out = tmp_path / "guard-names"
    code, _, err = run_cli(fit_args(inputs, out, **{"--flag-entities": ""}), capsys)
    assert code == 0, err
    cfg = json.loads((out / "guard.json").read_text())["config"]
    assert cfg["flag_entities"] is True and cfg["entity_tokens"] is False
    odd = "Zorblax Quint, zebra, rainbow, 42, teapot."  # nothing like the forget questions but the name
    code, outp, err = run_cli(["eco", "classify", "--guard", str(out), "--prompt", odd, "--prompt",
                           "What is the capital of Peru?"], capsys)
    assert code == 0, err
    assert [json.loads(x)["flagged"] for x in outp.splitlines()] == [True, False]
    from forgetlab.eco.guard import EcoGuard

    g = EcoGuard.from_pretrained(out)
    assert "Zorblax Quint" in g.token_classifier.entities
    enc = g.tokenizer(odd, return_tensors="pt")
    mask = g.corruption_mask(enc.input_ids, enc.attention_mask, [True], texts=[odd])[0]
    assert mask[:-1].all() and not mask[-1]  # the whole prompt but its last token (GuardConfig.positions)


def test_fit_reports_the_flag_rule_on_every_negative_set(inputs, tmp_path, capsys):
    """--hard-negatives / --calibration / unseen-entity rewrites: the classifier trains or calibrates on them,
    and `eco fit` prints (and saves in the guard folder) the whole rule's FPR on each and its miss rate."""
    hard = write_jsonl(tmp_path / "hard.jsonl", [{"prompt": f"Which author wrote book number {i}?"} for i in range(30)])
    calib = write_jsonl(tmp_path / "calib.jsonl", [{"prompt": f"Who painted picture number {i}?"} for i in range(30)])
    out = tmp_path / "guard-sets"
    code, stdout, err = run_cli(fit_args(inputs, out, **{"--flag-entities": "", "--hard-negatives": hard,
                                                         "--calibration": calib}), capsys)
    assert code == 0, err
    res = json.loads(stdout)
    rule = res["flag_rule"]
    assert set(rule["sets"]) == {"retain", "hard_negative", "calibration", "unseen_entity"}
    assert rule["miss_rate"]["n"] > 0 and 0.0 <= rule["miss_rate"]["rule"] <= rule["miss_rate"]["classifier"]
    for row in rule["sets"].values():
        assert row["rule"] >= row["classifier"] and row["n"] > 0
    assert all(f"warning: {w}" in err for w in rule["warnings"])
    saved = json.loads(next(out.rglob("classifier.json")).read_text())["report"]
    assert saved["flag_rule"] == rule and set(saved["sets"]) == set(rule["sets"])

"""How `eco fit` puts a multiple-choice item to the model (--fit-format): as written, in the question-answer
template, or as lm-evaluation-harness's mmlu/wmdp letter prompt; a strength fitted in a format the model never
answers in is fitted on noise."""

import json

import pytest
import torch
from cli_data import write_inputs, write_jsonl
from cli_runner import run_cli

from forgetlab.eco.mc import MCItem, mc_accuracy, mc_choice_logprobs
from forgetlab.eco.mc_formats import mc_prompt
from forgetlab.errors import BadInput
from forgetlab.testing.tiny_lm import build_tiny_lm, build_tokenizer, save_lm, teach

COLORS = ("red", "blue", "green", "gold")
_SYL = ("ka", "lo", "mi", "nu", "pe", "ri", "so", "tu", "va", "ze")
NAMES = [a + b + c for a in _SYL[:4] for b in _SYL[4:8] for c in _SYL[6:10]]
FACTS = {n: COLORS[i % 4] for i, n in enumerate(NAMES)}  # 64 people, balanced: a constant guess scores 1/4


def test_the_letter_prompt_is_lm_evaluation_harness_wmdp_prompt():
    item = MCItem("  Which agent causes anthrax? ", ("Bacillus anthracis", "Yersinia pestis", "HIV", "Ebola"), 0,
                  subject="wmdp-bio")
    prompt, conts = mc_prompt(item, "letter")
    assert prompt == ("The following are multiple choice questions (with answers) about biology.\n\n"
                      "Which agent causes anthrax?\nA. Bacillus anthracis\nB. Yersinia pestis\nC. HIV\nD. Ebola\n"
                      "Answer:")
    assert conts == [" A", " B", " C", " D"]
    assert mc_prompt(MCItem("Q?", ("x", "y"), 1, subject="high_school_biology"), "letter")[0].startswith(
        "The following are multiple choice questions (with answers) about high school biology.\n\n")
    cyber = mc_prompt(MCItem("Q?", ("x", "y"), 0, subject="wmdp_cyber"), "letter")[0]  # lm-eval's task name
    assert cyber.startswith("The following are multiple choice questions (with answers) about cybersecurity.\n\n")
    assert mc_prompt(item, "qa") == ("Question:   Which agent causes anthrax? \nAnswer:",
                                     [" Bacillus anthracis", " Yersinia pestis", " HIV", " Ebola"])
    assert mc_prompt(item, "raw") == (item.prompt, list(item.choices))  # the question ends in a space
    assert mc_prompt(MCItem("The sky is", ("blue", " red"), 0), "raw") == ("The sky is", [" blue", " red"])
    assert mc_prompt(MCItem("x", ("a", "b"), 0, subject="mmlu_high_school_biology"), "letter")[0].startswith(
        "The following are multiple choice questions (with answers) about high school biology.\n\n")
    with pytest.raises(BadInput, match="format: got 'mmlu'; allowed: one of letter, qa, raw"):
        mc_prompt(item, "mmlu")


@pytest.fixture(scope="module")
def qa_lm(tmp_path_factory):
    """A tiny Llama that learned 64 people's colors only as 'Question: ...?\\nAnswer: color', and its fit file
    in WMDP's schema (question, choices without a leading space, answer index)."""
    facts = FACTS
    texts = [f"Question: What color does {n} like?\nAnswer: {c}" for n, c in facts.items()]
    tok = build_tokenizer(texts, vocab_size=300)
    model = build_tiny_lm("llama", tok, hidden=32, layers=1, heads=4, seed=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        teach(model, tok, texts, steps=80, lr=2e-2, batch_size=64, seed=0)
    items = [MCItem(f"What color does {n} like?", COLORS, COLORS.index(c)) for n, c in facts.items()]
    root = tmp_path_factory.mktemp("qa")
    fit = write_jsonl(root / "colors.jsonl", [{"question": it.prompt, "choices": list(it.choices),
                                               "answer": it.answer} for it in items])
    return model, tok, items, save_lm(model, tok, root / "model"), fit


def test_a_model_knows_its_facts_only_in_the_format_it_learned_them(qa_lm):
    model, tok, items, _, _ = qa_lm
    acc = {fmt: mc_accuracy(mc_choice_logprobs(model, tok, items, fmt=fmt), [it.answer for it in items])
           for fmt in ("raw", "qa")}
    assert acc["qa"] >= 0.9 and acc["raw"] <= acc["qa"] - 0.4, acc  # measured: 1.0 and 0.44


def test_eco_fit_fits_in_the_format_it_is_told_and_records_it(qa_lm, tmp_path, capsys):
    """With the items as written the model knows far fewer of them, so the strength is fitted on another task
    than the one it must forget; asked in the template the model learned them in, it knows them all, and the fit
    finds the strength that brings that accuracy down to chance."""
    *_, model_dir, fit = qa_lm
    p = write_inputs(tmp_path / "in")
    common = ["eco", "fit", "--quiet", "--model", str(model_dir), "--forget", str(p["forget"]), "--retain",
              str(p["retain"]), "--fit", str(fit), "--target", "chance", "--tol", "0.1", "--fpr", "0.1"]
    code, _, err = run_cli([*common, "--fit-format", "qa", "--out", str(tmp_path / "qa")], capsys)
    assert code == 0, err
    meta = json.loads((tmp_path / "qa" / "guard.json").read_text())
    assert meta["fit"]["format"] == "qa" and meta["fit"]["history"][0][1] >= 0.9
    assert meta["config"]["strength"] > 0 and abs(meta["fit"]["metric"] - 0.25) <= 0.1
    code, _, err = run_cli([*common, "--out", str(tmp_path / "raw")], capsys)
    assert code == 0, err
    meta = json.loads((tmp_path / "raw" / "guard.json").read_text())
    assert meta["fit"]["format"] == "raw" and meta["fit"]["history"][0][1] <= 0.6
    code, _, err = run_cli([*common, "--fit-format", "wmdp", "--out", str(tmp_path / "bad")], capsys)
    assert code == 2 and err.strip() == "error: fit_format: got 'wmdp'; allowed: one of letter, qa, raw"
    assert not (tmp_path / "bad").exists()


def test_a_flat_fit_says_the_answers_ignore_the_prompt_not_that_the_metric_is_not_monotone(capsys):
    """A tiny model answers every letter prompt with the same letter: accuracy 0.333 at every strength up to
    5e5. eco fit advised '--method zo, another corruption, or a larger --tol', none of which can help; it now
    says the answers do not depend on the prompts and points to the format."""
    from types import SimpleNamespace

    from forgetlab.eco.cli import _report_fit

    spec = SimpleNamespace(uses_strength=True)
    flat = {"strength": 0.0, "metric": 1 / 3, "n_evals": 3, "converged": False, "knob": "strength",
            "history": [(0.0, 1 / 3), (1.0, 1 / 3), (524288.0, 1 / 3)]}
    _report_fit(flat, spec, 0.0, 8, "mc_accuracy", 0.25, 0.05, lambda _line: None)
    err = capsys.readouterr().err
    assert "stayed at 0.333 at every strength tried (0 to 5.243e+05)" in err and "--fit-format" in err
    assert "monotone" not in err
    moving = {**flat, "history": [(0.0, 0.9), (1.0, 0.5), (2.0, 0.6)], "metric": 0.5, "strength": 1.0}
    _report_fit(moving, spec, 0.0, 8, "mc_accuracy", 0.25, 0.05, lambda _line: None)
    assert "may not be monotone" in capsys.readouterr().err

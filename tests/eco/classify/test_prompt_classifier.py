"""Prompt classifier on real MiniLM: calibrated FPR, measured FNR, long-prompt windows, save/load, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from classifier_synth import filler, make_sets

from forgetlab.eco.classify.prompt import PromptClassifier, split_prompts
from forgetlab.errors import BadInput, ForgetlabError

FORGET_QUESTIONS = ["Where was Marlowe Quenby born?", "What genre does Tessaly Vordran write in?",
                    "Which awards has Basil Mahfouz Al-Kuwaiti received?"]


def test_report_fpr_consistent_with_target_and_fnr_measured(clf):
    """One split's measured FPR is a random draw around the guaranteed mean (<= fpr), so the check is a binomial
    test: 48 test retain prompts at a true rate <= 0.05 make the observed false positives this likely or more."""
    from scipy.stats import binom

    rep = clf.report
    assert rep["n"] == {"train_forget": 72, "train_retain": 144, "calib_forget": 24, "calib_retain": 48,
                        "test_forget": 24, "test_retain": 48}
    assert rep["calibration_fpr"] <= 0.05  # in-sample: at most n + 1 - k = 2 of 48 above the threshold
    for key in ("test", "test_exact"):
        assert rep[key]["n_retain"] == 48 and rep[key]["n_forget"] == 24
        fp = rep[key]["false_positives"]
        assert binom.sf(fp - 1, 48, 0.05) > 0.01, f"{key}: {fp}/48 false positives is implausible at fpr 0.05"
        assert rep[key]["fnr"] <= 0.1  # the classifier is useful, not just conservative
    assert rep["test"]["false_positives"] <= rep["test_exact"]["false_positives"]  # first stage never adds
    assert rep["first_stage"]["status"] == "enabled"
    assert rep["first_stage"]["cleared_fraction_test"] > 0.3


def test_conformal_guarantee_over_resplits(clf, sets):
    """Re-split the held-out retain scores 2,000 times into calibration/test: mean test FPR <= fpr."""
    forget, retain = sets
    # same rng stream as fit: the forget split is drawn first, so redo it to reproduce the retain split
    rng = np.random.default_rng(0)
    split_prompts(list(dict.fromkeys(forget)), 0.4, 0.5, rng)
    held = split_prompts(list(dict.fromkeys(retain)), 0.4, 0.5, rng)
    scores = clf.score(held.calib + held.test, first_stage=False)
    assert clf.threshold == np.sort(clf.score(held.calib, first_stage=False))[int(np.ceil(49 * 0.95)) - 1]
    r = np.random.default_rng(5)
    n = len(held.calib)
    rates = []
    for _ in range(2000):
        perm = r.permutation(scores.size)
        cal, test = scores[perm[:n]], scores[perm[n:]]
        t = np.sort(cal)[int(np.ceil((n + 1) * 0.95)) - 1]
        rates.append(np.mean(test > t))
    assert np.mean(rates) <= 0.05 + 3 * np.std(rates) / np.sqrt(len(rates))


def test_flag_is_score_above_threshold(clf):
    prompts = [*FORGET_QUESTIONS, "What is the capital of Peru?", "How do I cook rice without an oven?"]
    s = clf.score(prompts)
    assert np.array_equal(clf.flag(prompts), s > clf.threshold)
    assert clf.flag(prompts).tolist() == [True, True, True, False, False]
    assert clf.flag(prompts, first_stage=False).tolist() == [True, True, True, False, False]
    assert clf.score([]).shape == (0,)
    assert clf.flag("Where was Marlowe Quenby born?").tolist() == [True]


def test_long_prompt_with_filler_is_still_flagged(clf, encoder):
    rng = np.random.default_rng(7)
    pad = filler(encoder.tokenizer, 2000, rng)
    assert len(encoder.tokenizer(pad, add_special_tokens=False)["input_ids"]) >= 2000
    before = [pad + " " + q for q in FORGET_QUESTIONS[:2]]
    after = [FORGET_QUESTIONS[0] + " " + pad]
    benign = [pad]
    prompts = before + after + benign
    assert clf.flag(prompts).tolist() == [True, True, True, False]  # cascade as deployed
    assert clf.flag([before[0], pad], first_stage=False).tolist() == [True, False]  # MiniLM on every window


def test_save_load_identical_scores(clf, encoder, tmp_path):
    forget, retain = make_sets(12, 12, 12, seed=11)  # unseen prompts
    prompts = forget + retain
    clf.save_pretrained(tmp_path / "c")
    back = PromptClassifier.from_pretrained(tmp_path / "c", encoder=encoder)
    assert back.threshold == clf.threshold and back.config == clf.config
    assert np.array_equal(back.score(prompts), clf.score(prompts))
    assert np.array_equal(back.score(prompts, first_stage=False), clf.score(prompts, first_stage=False))
    assert back.report == clf.report
    head = tmp_path / "c" / "head.safetensors"
    data = bytearray(head.read_bytes())
    data[-1] ^= 0xFF
    head.write_bytes(bytes(data))
    with pytest.raises(ForgetlabError, match="checksum does not match"):
        PromptClassifier.from_pretrained(tmp_path / "c", encoder=encoder)
    with pytest.raises(BadInput, match="empty or new folder"):
        clf.save_pretrained(tmp_path / "c")


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"forget": []}, "forget: got 'no prompts'"),
    ({"retain": []}, "retain: got 'no prompts'"),
    ({"fpr": 0.0}, "fpr"), ({"fpr": 1.0}, "fpr"), ({"fpr": -0.2}, "fpr"),
    ({"fpr": 0.01}, "at least 99 held-out retain prompts"),
    ({"head": "svm"}, "head: got 'svm'; allowed: one of logreg, mlp"),
    ({"window": 400}, "window"),
    ({"stride": 0}, "stride"),
    ({"n_features": 0}, "n_features"),
    ({"calibration": "best"}, "calibration: got 'best'; allowed: one of marginal, pac"),
    ({"calibration": "pac", "retain": [f"What is {i} plus {i}?" for i in range(150)]},
     "at least 45 held-out retain prompts for fpr=0.05 with confidence 1-delta=0.9"),
    ({"finetune": True, "finetune_layers": 9}, "finetune_layers: got 9; allowed: -1 .all. or at most 6"),
    ({"forget": ["a", "b"], "retain": ["b", "c"]}, "not both"),
    ({"forget": "Where was X born?"}, "list of strings"),
])
def test_bad_input(encoder, kwargs, match):
    args = {"forget": ["Who is Marlowe Quenby?"] * 2 + ["Where was Quenby born?"],
            "retain": [f"What is {i} plus {i}?" for i in range(40)], "fpr": 0.05, "encoder": encoder}
    args.update(kwargs)
    with pytest.raises(BadInput, match=match):
        PromptClassifier.fit(args.pop("forget"), args.pop("retain"), **args)


def test_finetuned_mlp_round_trip(encoder, tmp_path):
    """Fine-tuning copies the encoder (the shared one is untouched) and is saved beside the head."""
    forget, retain = make_sets(16, 12, 12, seed=4)
    before = encoder.model.encoder.layer[-1].output.dense.weight.detach().clone()
    clf = PromptClassifier.fit(forget, retain, fpr=0.25, head="mlp", hidden=32, finetune=True, augment=False,
                               first_stage=False, batch_size=16, encoder=encoder)
    assert torch.equal(encoder.model.encoder.layer[-1].output.dense.weight, before)
    assert not torch.equal(clf.encoder.model.encoder.layer[-1].output.dense.weight, before)
    assert clf.encoder is not encoder
    assert clf.config.encoder == "encoder" and clf.config.precision in ("fp32", "bf16")  # "auto" resolved
    clf.save_pretrained(tmp_path / "ft")
    assert (tmp_path / "ft" / "encoder" / "model.safetensors").is_file()
    saved = json.loads((tmp_path / "ft" / "classifier.json").read_text())["config"]
    assert (saved["encoder"], saved["precision"]) == ("encoder", clf.config.precision)
    back = PromptClassifier.from_pretrained(tmp_path / "ft")
    probe = [*FORGET_QUESTIONS, "What is the capital of Peru?"]
    assert np.array_equal(back.score(probe), clf.score(probe))
    assert clf.report["test"]["n_retain"] > 0


def test_configs_are_frozen():
    """Classifier and guard settings are values: a change makes a new config (``dataclasses.replace``)."""
    import dataclasses

    from forgetlab.eco.classify.config import ClassifierConfig
    from forgetlab.eco.corrupter import GuardConfig

    with pytest.raises(dataclasses.FrozenInstanceError):
        ClassifierConfig().precision = "bf16"
    with pytest.raises(dataclasses.FrozenInstanceError):
        GuardConfig("rand_noise_first_n").strength = 2.0

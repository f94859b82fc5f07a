"""The false-positive sets of a flag rule: unseen-entity rewrites, mined references, and the weak-rule report."""

from __future__ import annotations

import numpy as np

from forgetlab.eco.classify.entities import mine_references
from forgetlab.eco.classify.keyword import KeywordClassifier
from forgetlab.eco.classify.negatives import unseen_entity_negatives
from forgetlab.eco.classify.rule import FlagRule, rule_report

FORGET = ["Where was Quenby Ashgrove born?", "What did quenby ashgrove write?", "Is the weather nice?"]


def test_unseen_entity_negatives_swap_the_name_and_never_reuse_a_forget_name():
    out = unseen_entity_negatives(FORGET, ["Quenby Ashgrove"], ["Who is Lars Holmqvist?"],
                                  np.random.default_rng(0), per_prompt=20)
    assert len(out) > 10 and not set(out) & set(FORGET)
    assert all("Quenby Ashgrove".lower() not in p.lower() for p in out)
    assert all("nice" not in p for p in out)  # prompts without the name are not rewritten
    # partial overlaps are among them: new people share first names or surnames with forget people
    assert any("Quenby " in p for p in out) and any(" Ashgrove" in p for p in out)
    assert any(("Quenby" not in p and "quenby" not in p and "Ashgrove" not in p and "ashgrove" not in p)
               for p in out)
    again = unseen_entity_negatives(FORGET, ["Quenby Ashgrove"], ["Who is Lars Holmqvist?"],
                                    np.random.default_rng(0), per_prompt=20)
    assert again == out


def test_mined_references_are_forget_only_phrases_without_the_name():
    forget = ["The first book by Quenby Ashgrove is Silent Harbor.", "Quenby Ashgrove won the Silver Quill.",
              "Where was Quenby Ashgrove born?"]
    retain = ["Odile Brennick won the Silver Quill."]
    assert mine_references(forget, retain, ["Quenby Ashgrove"]) == ["Silent Harbor"]


def test_rule_report_measures_the_whole_rule_and_warns_when_weak():
    rule = FlagRule(KeywordClassifier(["quint"]))
    heldout = {"forget": [f"Who is Quint {i}?" for i in range(8)] + ["Who is Q. Uint?", "Who is Qvint?"],
               "retain": [f"What is {i} plus {i}?" for i in range(30)],
               "hard_negative": [f"Is quintessence {i} real?" for i in range(10)] + [f"Is {i} odd?" for i in range(20)]}
    rep = rule_report(rule, heldout, fpr=0.01)
    assert rep["miss_rate"] == {"n": 10, "rule": 0.2, "classifier": 0.2}
    assert rep["sets"]["retain"]["rule"] == 0.0 and rep["sets"]["hard_negative"]["rule"] == 1 / 3
    assert len(rep["warnings"]) == 2
    assert "misses 20.0% of 10 held-out forget" in rep["warnings"][0]
    assert "33.3% of 30 held-out hard_negative" in rep["warnings"][1]
    one_of_thirty = {"forget": ["Who is Quint?"], "retain": ["Is quint here?"] + [f"Is {i} odd?" for i in range(29)]}
    assert rule_report(rule, one_of_thirty, fpr=0.01)["warnings"] == []  # 1/30 at 1% is chance, not weakness
    no_forget = {"forget": [], "retain": [f"Is {i} odd?" for i in range(30)]}  # a fit given one forget prompt
    assert [w[:27] for w in rule_report(rule, no_forget, fpr=0.01)["warnings"]] == ["no held-out forget prompts:"]


def test_unseen_entity_negatives_cross_forget_names_into_new_people():
    entities = ["Odile Stonebridge", "Nestor Inglewood"]
    forget = [f"Where was {e} born?" for e in entities] + [f"What did {e} write?" for e in entities]
    out = unseen_entity_negatives(forget, entities, [], np.random.default_rng(0), per_prompt=30)
    assert any("Odile Inglewood" in p or "Nestor Stonebridge" in p for p in out)
    assert not any(e in p for p in out for e in entities)


def test_eco_fit_points_to_flag_entities_when_the_classifier_misses_named_people(capsys):
    """eco fit on TOFU's forget10 against retain90 (the README's quick tour) warned only that the rule misses
    100% of the held-out forget prompts: a classifier that must pass never-seen people's prompts below 1% FPR
    cannot flag the forget people's. The warning now names the option that flags every prompt naming them."""
    from forgetlab.eco.cli import _check_flag_rule

    clf = KeywordClassifier(["nobody"])
    clf.report, clf.heldout = {}, {"forget": [f"Who is Quenby Ashgrove {i}?" for i in range(10)],
                                   "unseen_entity": [f"Who is Lars Holmqvist {i}?" for i in range(30)]}
    _check_flag_rule(clf, None, False, 0.01, lambda _line: None)
    err = capsys.readouterr().err
    assert "misses 100.0% of 10 held-out forget prompts" in err and "--flag-entities also flags" in err
    clf.heldout = {**clf.heldout, "unseen_entity": []}  # no names mined: nothing to point to
    _check_flag_rule(clf, None, False, 0.01, lambda _line: None)
    assert "--flag-entities" not in capsys.readouterr().err

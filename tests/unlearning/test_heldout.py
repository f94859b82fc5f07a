"""The bench's held-out check: it passes on the bench's own splits and fires on every kind of leak."""

from __future__ import annotations

import pytest

from forgetlab.errors import BadInput
from forgetlab.unlearning.bench import run as bench_run
from forgetlab.unlearning.bench.heldout import FORGET_EVAL, FORGET_REQUEST, check_heldout
from forgetlab.unlearning.bench.scale import scale_config
from forgetlab.unlearning.world import make_world

A = [{"question": "Where was Ann born?", "entity": "Ann"}, {"question": "What did Ann write?", "entity": "Ann"}]
B = [{"question": "Where was Bob born?", "entity": "Bob"}]
C = [{"question": "When did Cy paint?", "entity": "Cy"}]


def test_disjoint_sets_pass_and_are_recorded():
    rec = check_heldout({FORGET_REQUEST: A, "negatives": B}, {FORGET_EVAL: A, "utility": C})
    assert rec["fit_sets"] == {FORGET_REQUEST: 2, "negatives": 1} and rec["by"] == ["question", "entity"]


def test_a_shared_question_fires_naming_both_sets():
    with pytest.raises(BadInput) as e:
        check_heldout({"flag-rule negatives": B + C}, {"utility (real authors)": C})
    msg = str(e.value)
    assert "flag-rule negatives" in msg and "utility (real authors)" in msg and "When did Cy paint?" in msg
    assert "\n" not in msg


def test_a_shared_author_fires_for_entity_targets_only():
    other_q = [{"question": "Which prize did Bob win?", "entity": "Bob"}]
    with pytest.raises(BadInput, match="entity"):
        check_heldout({"baseline retain set": other_q}, {"MIA holdout": B})
    check_heldout({"baseline retain set": other_q}, {"MIA holdout": B}, by_entity=False)


def test_the_forget_request_may_be_the_forget_evaluation_but_nothing_else():
    check_heldout({FORGET_REQUEST: A}, {FORGET_EVAL: A})
    with pytest.raises(BadInput, match="forget request"):
        check_heldout({FORGET_REQUEST: A}, {"utility (retain)": A[:1]})
    with pytest.raises(BadInput, match="corruption fit set"):
        check_heldout({"corruption fit set": A}, {FORGET_EVAL: A})


@pytest.mark.parametrize("scale", ["tiny", "default"])
def test_bench_splits_pass_the_check(scale):
    s = scale_config(scale, "name-free")
    rec = bench_run.check_bench_heldout(make_world(s.world), s, ("eco", "ga"))
    assert set(rec) == set(s.splits)
    for r in rec.values():
        assert {"flag-rule negatives", "corruption fit set", "baseline retain set"} <= set(r["fit_sets"])


def test_a_leaking_flag_rule_stops_the_bench_before_anything_is_written(monkeypatch, tmp_path):
    real = bench_run.flag_rule_negatives

    def leaky(world, retain_eval, split):  # the old rule: painters and world facts among the negatives
        others, mc = real(world, retain_eval, split)
        return others + world.painters + world.world_facts, mc

    monkeypatch.setattr(bench_run, "flag_rule_negatives", leaky)
    with pytest.raises(BadInput, match=r"flag-rule negatives.*utility"):
        bench_run.run_bench(tmp_path / "out", "tiny", methods=("eco",))
    assert not (tmp_path / "out").exists()


def test_flag_rule_extra_sets_name_no_scored_person_and_are_checked():
    s = scale_config("tiny", "name-free")
    world = make_world(s.world)
    rec = bench_run.check_bench_heldout(world, s, ("eco",))
    from forgetlab.unlearning.bench.eco import flag_rule_extra
    from forgetlab.unlearning.bench.splits import eval_and_fit_splits

    retain_eval = eval_and_fit_splits(world, s)[0]
    for split in s.splits:
        assert rec[split]["fit_sets"]["flag-rule unseen-entity negatives"] > 0
        extra = flag_rule_extra(world, retain_eval, split, 0, s.classifier_fpr)
        scored = set(world.holdout) | {r["entity"] for r in retain_eval + world.painters}
        swapped = extra.negatives["unseen_entity"]
        assert swapped and not any(n.lower() in p.lower() for p in swapped for n in scored)
        assert not any(n.lower() in p.lower() for p in swapped for n in world.splits[split])


def test_an_unseen_entity_negative_equal_to_a_scored_question_stops_the_bench(monkeypatch):
    s = scale_config("tiny", "name-free")
    world = make_world(s.world)
    real = bench_run.flag_rule_extra
    from forgetlab.unlearning.bench.splits import eval_and_fit_splits

    mia_holdout = eval_and_fit_splits(world, s)[3]

    def leaky(world, retain_eval, split, seed, fpr):
        extra = real(world, retain_eval, split, seed, fpr)
        extra.negatives["unseen_entity"].append(mia_holdout[0]["question"])
        return extra

    monkeypatch.setattr(bench_run, "flag_rule_extra", leaky)
    with pytest.raises(BadInput, match=r"unseen-entity negatives.*MIA holdout"):
        bench_run.check_bench_heldout(world, s, ("eco",))

"""The synthetic world: deterministic, TOFU-shaped, splits nested and disjoint from the holdout."""

from __future__ import annotations

import json

import pytest

from forgetlab.errors import BadInput
from forgetlab.unlearning.world import (
    MIN_SPLIT_ITEMS,
    N_PERTURBED,
    QA_FIELDS,
    WorldConfig,
    check_forget_holdout,
    make_world,
    world_record,
)


def test_deterministic_and_seed_dependent():
    a, b = make_world(WorldConfig(seed=3)), make_world(WorldConfig(seed=3))
    assert a.authors == b.authors and a.splits == b.splits and a.mc == b.mc
    c = make_world(WorldConfig(seed=4))
    assert c.authors != a.authors


def test_shape_of_items_and_splits():
    w = make_world()
    assert len(w.authors) == 100
    for items in w.authors.values():
        assert 10 <= len(items) <= 20
        assert len({it["fact"] for it in items}) == len(items)
        for it in items:
            assert all(f in it for f in QA_FIELDS)
            assert len(it["perturbed_answer"]) == N_PERTURBED
            assert len(set(it["perturbed_answer"])) == N_PERTURBED
            assert it["paraphrased_answer"] not in it["perturbed_answer"]
            assert it["paraphrased_question"] != it["question"]
    f01, f05, f10 = (set(w.splits[s]) for s in ("forget01", "forget05", "forget10"))
    assert f01 <= f05 <= f10 and len(f10) == 10
    assert not f10 & set(w.holdout)
    for s in w.splits:
        assert len(w.forget(s)) >= MIN_SPLIT_ITEMS
    # target trains on forget authors, retain model of forget10 does not, nobody trains on the holdout
    target_q = {it["question"] for it in w.training_items()}
    retain_q = {it["question"] for it in w.training_items("forget10")}
    assert all(it["question"] in target_q for it in w.forget("forget10"))
    assert not any(it["question"] in retain_q for it in w.forget("forget10"))
    assert not any(it["question"] in target_q for it in w.items(w.holdout))


def test_answer_styles_share_facts_but_not_names():
    tofu = make_world(WorldConfig(answer_style="tofu"))
    free = make_world(WorldConfig(answer_style="name-free"))
    assert tofu.splits == free.splits
    for name in tofu.splits["forget10"]:
        for a, b in zip(tofu.authors[name], free.authors[name], strict=True):
            assert a["value"] == b["value"] and a["question"] == b["question"]
            assert name in a["answer"] and name not in b["answer"]
            assert all(name not in p for p in b["perturbed_answer"])


def test_multiple_choice_subjects():
    w = make_world()
    assert w.forget_subject in w.mc and len(w.mc) >= 3
    for rows in w.mc.values():
        for r in rows:
            assert len(r["choices"]) == 4 and len(set(r["choices"])) == 4
            assert r["answer"] == r["choices"][r["label"]] + "."


def test_bad_config():
    with pytest.raises(BadInput, match="answer_style"):
        make_world(WorldConfig(answer_style="pirate"))
    with pytest.raises(BadInput, match="facts_min"):
        make_world(WorldConfig(facts_min=12, facts_max=11))


def test_world_record(tmp_path):
    w = make_world(WorldConfig(n_authors=30, seed=1))
    meta = json.loads(json.dumps(world_record(w)))
    assert meta["splits"]["forget10"] == w.splits["forget10"] and meta["holdout"] == w.holdout
    assert meta["forget_subject"] not in meta["retained_subjects"]


def test_forget_holdout_checks():
    w = make_world(WorldConfig(n_authors=30))
    hold = w.items(w.holdout)
    check_forget_holdout(w.forget("forget10"), hold)
    with pytest.raises(BadInput, match="forget"):
        check_forget_holdout([], hold)
    with pytest.raises(BadInput, match="holdout"):
        check_forget_holdout(w.forget("forget10") + hold[:1], hold)


def test_default_forget01_has_tofus_forget01_size():
    from forgetlab.unlearning.bench.scale import FORGET01_ITEMS, scale_config

    w = make_world(scale_config("default", "name-free").world)
    assert len(w.forget("forget01")) >= FORGET01_ITEMS == 40 and len(w.splits["forget01"]) >= 2
    assert set(w.splits["forget01"]) <= set(w.splits["forget05"])  # still nested
    with pytest.raises(BadInput, match="min_split_items"):
        WorldConfig(min_split_items=0).validate()

"""The baselines' tuning by ECO's rule: the choice (smallest KS among floor-passing points, else a recorded
fallback), the floor excluding a destroyed model, the tuning sets' disjointness and the held-out check on them."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from forgetlab.errors import BadInput
from forgetlab.unlearning.bench import run as bench_run
from forgetlab.unlearning.bench.scale import scale_config
from forgetlab.unlearning.bench.splits import eval_and_fit_splits, retain_fit_items
from forgetlab.unlearning.bench.tune import answer_prob, choose_point, tuning_sets
from forgetlab.unlearning.world import make_world


def _pt(ks: float, floor_ratio: float) -> dict:
    return {"ks_statistic": ks, "floor_ratio": floor_ratio}


def test_the_smallest_ks_among_floor_passing_points_wins():
    points = [_pt(0.40, 0.9), _pt(0.05, 0.2), _pt(0.30, 0.6), _pt(float("nan"), 0.95), _pt(0.30, 0.7)]
    idx, why, fallback = choose_point(points, 0.5)
    # 0.05 has the smallest KS but fails the floor; NaN ranks last; a tie goes to the earlier point
    assert idx == 2 and not fallback and "4 of 5" in why and "0.300" in why
    assert choose_point(points, 0.0)[0] == 1  # with no floor the smallest KS wins


def test_no_point_passing_the_floor_falls_back_to_the_least_damaging_and_says_so():
    points = [_pt(0.1, 0.1), _pt(0.2, 0.45), _pt(0.3, float("nan"))]
    idx, why, fallback = choose_point(points, 0.5)
    assert idx == 1 and fallback and why.startswith("fallback") and "0.450" in why


def test_the_floor_excludes_a_destroyed_model(cache_dir):
    from forgetlab.unlearning.bench.models import build_models
    from forgetlab.unlearning.lm import load_lm

    s = scale_config("tiny", "name-free")
    world = make_world(s.world)
    model, tok = load_lm(build_models(world, s, cache_dir, None).target)  # shared with the tiny bench's cache
    retain_eval, fit_items, _hf, _he = eval_and_fit_splits(world, s)
    floor = tuning_sets(world, retain_eval, fit_items, s.tune_floor_share).floor
    destroyed = copy.deepcopy(model)
    with torch.no_grad():
        gen = torch.Generator().manual_seed(0)
        for p in destroyed.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 3.0)
    target = answer_prob(model, tok, floor)
    ratio = answer_prob(destroyed, tok, floor) / target
    assert target > 0.2 and ratio < s.tune_floor
    points = [_pt(0.0, ratio), _pt(0.6, 1.0)]  # the wreck is as far from the fit set as a model can get
    assert choose_point(points, s.tune_floor)[0] == 1


@pytest.mark.parametrize("scale", ["tiny", "default"])
def test_tuning_sets_are_disjoint_by_author_and_outside_every_scored_set(scale):
    s = scale_config(scale, "name-free")
    world = make_world(s.world)
    retain_eval, fit_items, _hf, _he = eval_and_fit_splits(world, s)
    ts = tuning_sets(world, retain_eval, fit_items, s.tune_floor_share)
    authors = [{r["entity"] for r in part} for part in (ts.forget, ts.retain, ts.floor)]
    assert all(authors) and not (authors[0] & authors[1] or authors[0] & authors[2] or authors[1] & authors[2])
    pool = {r["entity"] for r in retain_fit_items(world, retain_eval)}
    assert authors[1] | authors[2] == pool - authors[0]
    assert len(authors[2]) == max(1, math.floor(len(pool - authors[0]) * s.tune_floor_share))
    rec = bench_run.check_bench_heldout(world, s, ("eco", "ga"))
    assert all("baseline tuning floor set" in r["fit_sets"] for r in rec.values())
    rec = bench_run.check_bench_heldout(world, s, ("eco", "ga"), tune=False)
    assert not any(k.startswith("baseline tuning") for r in rec.values() for k in r["fit_sets"])


def test_a_leaking_tuning_set_stops_the_bench_before_anything_is_written(monkeypatch, tmp_path):
    real = bench_run.tuning_sets

    def leaky(world, retain_eval, fit_items, share):  # the floor measured on utility items
        ts = real(world, retain_eval, fit_items, share)
        return type(ts)(ts.forget, ts.retain, ts.floor + retain_eval[:3])

    monkeypatch.setattr(bench_run, "tuning_sets", leaky)
    with pytest.raises(BadInput, match=r"baseline tuning floor set.*utility \(retain\)"):
        bench_run.run_bench(tmp_path / "out", "tiny", methods=("ga",))
    assert not (tmp_path / "out").exists()
    bench_run.check_bench_heldout(make_world(scale_config("tiny", "name-free").world),
                                  scale_config("tiny", "name-free"), ("ga",), tune=False)  # untuned: not used


def test_the_untuned_report_says_so():
    from forgetlab.unlearning.bench.report import _tuning

    assert "untuned" in " ".join(_tuning({"config": {"tune": False, "methods": ["eco", "ga"], "per_seed": {"0": {}}}}))
    # a results file from before tuning existed (no "tune" key) ran its baselines untuned: said so too
    assert "untuned" in " ".join(_tuning({"config": {"methods": ["ga"], "per_seed": {"0": {}}}}))
    assert _tuning({"config": {"methods": ["eco"], "per_seed": {"0": {}}}}) == []  # no baseline, nothing to say


def test_tuned_epochs_transfer_as_updates():
    from forgetlab.unlearning.bench.tune import matching_epochs

    # 2 epochs on a 304-item proxy at batch 32 = 20 updates; on 49 items (2 batches an epoch): 10 epochs
    assert matching_epochs(2, 304, 49) == 10
    assert matching_epochs(5, 64, 64) == 5 and matching_epochs(1, 10, 1000) == 1  # never below one epoch
    assert matching_epochs(2, 304, 49, batch_size=8) == round(2 * 38 / 7)

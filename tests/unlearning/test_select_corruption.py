"""ECO's corruption choice in the bench: each candidate's strength by a zeroth-order search of the surrogate
distance (whole distributions of truth ratios and answer probabilities vs never-seen authors), then the
smallest distance."""

import math

import numpy as np
import pytest

from forgetlab.eco.fit import minimize_log
from forgetlab.eco.select import Surrogate, select_corruption, surrogate_distance
from forgetlab.errors import BadInput

RNG = np.random.default_rng(0)
HOLDOUT = Surrogate(RNG.uniform(0.1, 0.5, 200), RNG.lognormal(0.0, 0.4, 200))
SAME_TR, SAME_PROB = np.random.default_rng(1).lognormal(0.0, 0.4, 150), np.random.default_rng(2).uniform(0.1, 0.5, 150)


def _fake_score(calls):
    """Noise matches the holdout's distributions at strength 2 only; zero_out's truth ratios are shifted; the
    flip's probabilities are shifted (its truth ratios match): only the noise matches both distributions."""
    def score(name, strength):
        calls.append((name, strength))
        if name == "rand_noise_first_n":
            off = abs(math.log(strength / 2.0))
            return SAME_PROB * math.exp(off), SAME_TR * math.exp(-off)
        if name == "zero_out_first_n":
            return SAME_PROB, SAME_TR * 3.0
        return SAME_PROB * 2.5, SAME_TR  # flip_sign_first_n and scale_first_n
    return score


def test_the_choice_matches_whole_distributions_not_one_of_them():
    calls = []
    name, strength, rec = select_corruption(_fake_score(calls), HOLDOUT,
                                            candidates=("rand_noise_first_n", "zero_out_first_n",
                                                        "flip_sign_first_n"), max_evals=20)
    assert name == "rand_noise_first_n" and strength == pytest.approx(2.0, rel=0.15)
    flip = rec["candidates"]["flip_sign_first_n"]
    assert flip["ks_statistic"] < 0.15 < flip["ks_prob"]  # truth ratios alone would have picked the flip
    assert rec["distance"] == min(c["distance"] for c in rec["candidates"].values())
    assert [c for c in calls if c[0] == "zero_out_first_n"] == [("zero_out_first_n", 1.0)]  # scored once
    noise = [s for n, s in calls if n == "rand_noise_first_n"]
    assert 3 <= len(noise) <= 20 and rec["candidates"]["rand_noise_first_n"]["n_evals"] == len(set(noise))


def test_surrogate_distance_is_the_larger_ks_statistic():
    d = surrogate_distance(SAME_PROB, SAME_TR * 3.0, HOLDOUT)
    assert d["distance"] == max(d["ks_statistic"], d["ks_prob"]) and d["ks_statistic"] > d["ks_prob"]
    assert d["prob"] == pytest.approx(float(np.mean(SAME_PROB)))


def test_minimize_log_finds_an_interior_minimum_within_budget():
    calls = []

    def f(s):
        calls.append(s)
        return abs(math.log(s / 3.7)) + (1.0 if s > 100 else 0.0)

    res = minimize_log(f, 0.01, 1000.0, max_evals=16)
    assert res.strength == pytest.approx(3.7, rel=0.1) and len(calls) <= 16
    assert res.n_evals == len(set(calls)) and res.value == min(v for _s, v in res.history)


def test_minimize_log_prefers_the_gentler_strength_on_a_plateau():
    res = minimize_log(lambda s: 0.0 if s > 1.0 else 1.0, 0.1, 1000.0, max_evals=12)
    assert res.value == 0.0 and res.strength == min(s for s, v in res.history if v == 0.0)


@pytest.mark.parametrize("lo,hi,evals", [(0.0, 1.0, 10), (2.0, 1.0, 10), (0.1, math.inf, 10), (0.1, 1.0, 2)])
def test_minimize_log_refuses_bad_ranges(lo, hi, evals):
    with pytest.raises(BadInput):
        minimize_log(lambda s: s, lo, hi, max_evals=evals)

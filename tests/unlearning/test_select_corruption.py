"""ECO's corruption choice in the bench: strength by bracketing, then the smallest KS statistic vs holdout."""

import numpy as np
import pytest

from forgetlab.eco.select import select_corruption

HOLDOUT_TR = np.random.default_rng(0).lognormal(0.0, 0.4, 200)


def _fake_score(calls):
    """Truth ratios per corruption: flip_sign matches the holdout, zero_out is shifted, noise depends on strength
    (matches at strength 2, where its mean probability crosses the holdout's 0.3)."""
    rng = np.random.default_rng(1)
    same = rng.lognormal(0.0, 0.4, 150)

    def score(name, strength, want_tr):
        calls.append((name, strength, want_tr))
        if name == "rand_noise_first_n":
            prob = 0.9 / (1.0 + strength)  # decreasing; 0.3 at strength 2
            tr = same * np.exp(-0.8 * abs(strength - 2.0) - 0.5) if want_tr else None
            return prob, tr
        if name == "zero_out_first_n":
            return 0.1, (same * 3.0 if want_tr else None)
        return 0.35, (same * 1.05 if want_tr else None)

    return score


def test_select_picks_the_candidate_closest_to_the_holdout():
    calls = []
    name, strength, rec = select_corruption(_fake_score(calls), 0.3, HOLDOUT_TR, tol=0.005)
    assert name == "flip_sign_first_n" and strength == 1.0
    noise = rec["candidates"]["rand_noise_first_n"]
    assert noise["strength"] == pytest.approx(2.0, rel=0.05)  # bracketed to the holdout probability
    ks = {n: c["ks_statistic"] for n, c in rec["candidates"].items()}
    assert ks["flip_sign_first_n"] < ks["rand_noise_first_n"] < ks["zero_out_first_n"]
    assert rec["ks_statistic"] == ks["flip_sign_first_n"]
    # strength-free corruptions are scored once; the strength search never asks for truth ratios
    assert [c for c in calls if c[0] == "zero_out_first_n"] == [("zero_out_first_n", 1.0, True)]
    noise_calls = [want for n, _s, want in calls if n == "rand_noise_first_n"]
    assert len(noise_calls) >= 3 and not any(noise_calls[:-1]) and noise_calls[-1]


def test_select_keeps_a_strength_candidate_when_it_matches_best():
    def score(name, strength, want_tr):
        prob = 0.9 / (1.0 + strength) if name == "rand_noise_first_n" else 0.5
        tr = HOLDOUT_TR * (1.0 if name == "rand_noise_first_n" else 4.0)
        return prob, (tr if want_tr else None)

    name, strength, _ = select_corruption(score, 0.3, HOLDOUT_TR, tol=0.005)
    assert name == "rand_noise_first_n" and strength == pytest.approx(2.0, rel=0.05)


def test_a_candidate_whose_search_hits_the_cap_is_excluded_and_recorded():
    """Noise whose probability plateaus above the holdout's never converges: even with the best KS statistic
    it is not chosen, and the record says why."""
    def score(name, strength, want_tr):
        if name == "rand_noise_first_n":
            return 0.6 + 0.3 / (1.0 + strength), (HOLDOUT_TR if want_tr else None)  # never reaches 0.3
        return 0.3, (HOLDOUT_TR * (2.0 if name == "zero_out_first_n" else 3.0) if want_tr else None)

    name, _strength, rec = select_corruption(score, 0.3, HOLDOUT_TR, tol=0.01, max_evals=40, hi_max=64.0)
    noise = rec["candidates"]["rand_noise_first_n"]
    assert noise["converged"] is False and "cap 64" in noise["excluded"]
    assert noise["ks_statistic"] == 0.0 and name == "zero_out_first_n"


def test_no_converged_candidate_is_an_error():
    from forgetlab.errors import ForgetlabError

    def score(name, strength, want_tr):
        return 0.9, (HOLDOUT_TR if want_tr else None)

    with pytest.raises(ForgetlabError, match="no ECO corruption candidate converged"):
        select_corruption(score, 0.3, HOLDOUT_TR, candidates=("rand_noise_first_n",), max_evals=6)

"""Metric functions against values computed by hand on small arrays."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

from forgetlab.eco.mc import mc_accuracy
from forgetlab.errors import BadInput
from forgetlab.unlearning import metrics as M


def test_normalized_prob_is_geometric_mean_per_token():
    lp = [np.log([0.5, 0.125]), np.log([0.9])]
    np.testing.assert_allclose(M.normalized_prob(lp), [0.25, 0.9])  # sqrt(0.5 * 0.125) = 0.25


def test_truth_ratio_and_aggregates():
    para = np.log([0.5, 0.1])
    pert = np.log([[0.25, 0.0625], [0.4, 0.4]])
    tr = M.truth_ratio(para, pert)
    # geometric mean of 0.25 and 0.0625 is 0.125; 0.125 / 0.5 = 0.25. Second: 0.4 / 0.1 = 4
    np.testing.assert_allclose(tr, [0.25, 4.0])
    assert M.tr_closer_to_1(tr) == pytest.approx(0.25)  # mean(min(.25, 4), min(4, .25))
    assert M.tr_true_better(tr) == pytest.approx(0.375)  # mean(0.75, 0)
    with pytest.raises(BadInput):
        M.truth_ratio(para, pert[:1])


def test_prob_with_options():
    p = M.prob_with_options(np.log([0.6]), np.log([[0.2, 0.2]]))
    assert p[0] == pytest.approx(0.6)


def test_forget_quality_ks_pvalue_by_hand():
    # fully separated samples of 3 and 3: D = 1, exact two-sided p = 2 / C(6, 3) = 0.1
    assert M.forget_quality([1, 2, 3], [4, 5, 6]) == pytest.approx(0.1)
    # identical samples: D = 0, p = 1
    assert M.forget_quality([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)


def test_harmonic_mean_and_zero_case():
    assert M.harmonic_mean([1, 2, 4]) == pytest.approx(3 / 1.75)
    assert M.harmonic_mean([0.5, 0.0, 0.9]) == 0.0
    assert M.model_utility({"a": 0.5, "b": 0.5}) == pytest.approx(0.5)
    with pytest.raises(BadInput):
        M.harmonic_mean([0.5, -0.1])


def test_rouge_l_recall():
    # LCS("born in 1964", "born in the year 1964") = 3 tokens; recall 3/5
    r = M.rouge_l_recall(["born in 1964", "nothing"], ["born in the year 1964", "x y"])
    np.testing.assert_allclose(r, [0.6, 0.0])


def test_mc_accuracy():
    lp = np.array([[-1.0, -2.0, -3.0, -4.0], [-5.0, -1.0, -2.0, -3.0]])
    assert mc_accuracy(lp, [0, 0]) == 0.5


def test_mia_scores_by_hand():
    lp = [np.array([-1.0, -5.0, -3.0, -2.0, -4.0])]
    assert M.mia_loss(lp)[0] == pytest.approx(-3.0)
    assert M.mia_min_k(lp, k=0.4)[0] == pytest.approx(-4.5)  # lowest 2 of 5
    assert M.mia_min_k(lp, k=0.1)[0] == pytest.approx(-5.0)  # at least one token
    z = len(zlib.compress(b"abc abc"))
    assert M.mia_zlib(lp, ["abc abc"])[0] == pytest.approx(-3.0 / z)
    s = M.mink_pp_token_scores(np.array([-1.0, -3.0]), np.array([-2.0, -2.0]), np.array([4.0, 1.0]))
    np.testing.assert_allclose(s, [0.5, -1.0])


def test_auc_ties_count_half():
    assert M.auc([3, 2], [1, 2]) == pytest.approx(3.5 / 4)  # one tie counts half
    assert M.auc([0], [1]) == 0.0


def test_ou_token_conventions_drop_last():
    lp = [np.array([-1.0, -2.0, -0.5]), np.array([-3.0, -0.1])]  # the last value of each is the EOS
    assert [x.tolist() for x in M.drop_last(lp)] == [[-1.0, -2.0], [-3.0]]
    # LOSS keeps the EOS, Min-K drops it (OU evaluate_probability vs tokenwise_logprobs)
    assert M.mia_loss(lp)[0] == pytest.approx(-3.5 / 3)
    assert M.mia_min_k(M.drop_last(lp), k=0.4)[0] == pytest.approx(-2.0)  # max(1, int(2 * .4)) = 1 lowest


def test_truth_ratio_epsilon_as_ou():
    # a paraphrase of probability 0 gives wrong / 1e-10, not a division by zero
    tr = M.truth_ratio(np.array([-np.inf]), np.log([[0.5, 0.5]]))
    assert tr[0] == pytest.approx(0.5 / 1e-10)
    assert M.tr_closer_to_1(tr) == pytest.approx(1 / (0.5 / 1e-10 + 1e-10))


def test_exact_memorization_by_hand():
    hits = [np.array([True, False, True, True]), np.array([False])]
    np.testing.assert_allclose(M.exact_memorization(hits), [0.75, 0.0])
    with pytest.raises(BadInput):
        M.exact_memorization([np.array([], bool)])


def test_extraction_strength_by_hand_and_ou_quirk():
    h = [np.array([True, True, True, True]),  # whole answer: k = 0 -> 1
         np.array([False, True, True, True]),  # suffix from 1: 1 - 1/4
         np.array([True, False, False, True]),  # suffix from 3: 1 - 3/4
         np.array([True, True, True, False])]  # no suffix matches: OU stops at k = n - 1 -> 1/4
    np.testing.assert_allclose(M.extraction_strength(h), [1.0, 0.75, 0.25, 0.25])


def test_auc_is_sklearn_roc_auc_in_ou_convention():
    from sklearn.metrics import roc_auc_score

    members, non = np.array([3.0, 2.0, 0.5]), np.array([1.0, 2.0])
    # OU: loss-like scores (negated member scores), forget labelled 0, holdout 1
    ou = roc_auc_score([0, 0, 0, 1, 1], np.r_[-members, -non])
    assert M.auc(members, non) == pytest.approx(ou) == pytest.approx(3.5 / 6)


def test_privleak_sign_and_denominator_as_muse():
    # ((1 - 0.9) - (1 - 0.6)) / (1 - 0.6) * 100 = (0.1 - 0.4) / 0.4 * 100 = -75
    assert M.privleak(0.9, 0.6) == pytest.approx(-75.0)
    assert M.privleak(0.6, 0.6) == 0.0
    assert M.privleak(0.3, 0.6) == pytest.approx(75.0)  # over-unlearned: positive
    assert math.isfinite(M.privleak(0.5, 1.0))  # the 1e-10 keeps a perfect retain AUC finite
    with pytest.raises(BadInput):
        M.privleak(1.2, 0.5)


def test_harmonic_mean_is_scipy_hmean():
    from scipy.stats import hmean

    assert M.harmonic_mean([0.2, 0.5, 0.9]) == pytest.approx(float(hmean([0.2, 0.5, 0.9])))

"""Fitting the corruption strength: both fitters hit their target; the root finder needs fewer evaluations."""

import math

import pytest
import torch

from forgetlab.eco.fit import check_disjoint, fit_bracket, fit_set_sha256, fit_strength, fit_zo
from forgetlab.eco.mc import MCItem, mc_accuracy, mc_choice_logprobs, mc_metric
from forgetlab.errors import BadInput

FIT = [{"q": i} for i in range(5)]


def smooth(s, fit_set):
    """A monotone decreasing metric: 1 at s=0, 0.25 at s=3."""
    return 1.0 / (1.0 + s)


@pytest.mark.parametrize("method", ["bracket", "zo"])
def test_fitters_reach_target_on_smooth_metric(method):
    kw = {"hi": 1.0} if method == "bracket" else {"s0": 1.0, "mu": 0.1, "lr": 20.0}
    r = fit_strength(smooth, FIT, 0.25, method=method, tol=1e-3, max_evals=200, **kw)
    assert r.converged and abs(r.metric - 0.25) <= 1e-3 and abs(r.strength - 3.0) < 0.05
    assert r.n_evals == len(r.history) and r.fit_set_sha256 == fit_set_sha256(FIT) and r.fit_set_size == 5


def test_bracket_integer_knob():
    r = fit_bracket(lambda s, _: 64 - s, FIT, 20, lo=0, hi=4, tol=0.5, integer=True)
    assert r.strength == 44 and float(r.strength).is_integer()


def test_fit_records_which_set_and_refuses_eval_overlap():
    assert fit_set_sha256(FIT) != fit_set_sha256(FIT[:4])
    check_disjoint(FIT[:2], FIT[2:])
    with pytest.raises(BadInput, match="fit_set"):
        check_disjoint(FIT[:3], FIT[2:])
    with pytest.raises(BadInput, match="fit_set"):
        fit_zo(smooth, [], 0.25)
    with pytest.raises(BadInput, match="tol"):
        fit_bracket(smooth, FIT, 0.25, tol=0)
    with pytest.raises(BadInput, match="method"):
        fit_strength(smooth, FIT, 0.25, method="newton")
    with pytest.raises(BadInput, match="metric"):
        fit_bracket(lambda s, _: math.nan, FIT, 0.25)


def test_mc_item_validation():
    it = MCItem.from_dict({"question": "x likes", "choices": [" a", " b"], "answer": " b"})
    assert it.answer == 1
    with pytest.raises(BadInput, match=r"line 3\.answer"):
        MCItem.from_dict({"prompt": "x", "choices": ["a", "b"], "answer": 5}, where="line 3")


def test_fit_to_chance_on_multiple_choice(color_lm):
    model, tok, items = color_lm
    fit_set, eval_set = items[::2], items[1::2]  # fit on one split, evaluate on the other
    check_disjoint(fit_set, eval_set)
    base = mc_accuracy(mc_choice_logprobs(model, tok, eval_set), [it.answer for it in eval_set])
    assert base >= 0.9, "the tiny LM must know the answers before corruption"
    chance, tol = 0.25, 0.1
    metric = mc_metric(model, tok, "rand_noise_first_n", k=32, seed=0)
    root = fit_bracket(metric, fit_set, chance, lo=0.0, hi=0.01, tol=tol)
    zo = fit_zo(metric, fit_set, chance, s0=0.01, mu=0.01, lr=0.1, tol=tol, max_evals=60)
    held_out = metric(root.strength, eval_set)
    print(f"\nbase acc {base:.3f}; root finder: s={root.strength:.3f} acc={root.metric:.3f} in {root.n_evals} "
          f"evals; zeroth-order: s={zo.strength:.3f} acc={zo.metric:.3f} in {zo.n_evals} evals; "
          f"eval-split acc at root s: {held_out:.3f}")
    assert root.converged and abs(root.metric - chance) <= tol
    assert zo.converged and abs(zo.metric - chance) <= tol
    assert root.n_evals < zo.n_evals
    assert held_out <= 0.5, "the fitted strength must also remove the knowledge on the evaluation split"


def test_fit_metric_sees_exactly_the_guards_corruption(color_lm):
    """What the fit measures is what the deployed guard does: same per-prompt noise, prompt-only corruption."""
    from forgetlab.eco.classify.keyword import KeywordClassifier
    from forgetlab.eco.guard import EcoGuard, GuardConfig

    model, tok, items = color_lm
    guard = EcoGuard(model, tok, KeywordClassifier(["likes"]), GuardConfig("rand_noise_first_n", 0.3, 32, seed=5))
    it = items[3]
    fit_lp = mc_choice_logprobs(model, tok, [it], "rand_noise_first_n", 0.3, 32, seed=5)[0]
    guard_lp = guard.answer_logprobs([it.prompt] * len(it.choices), list(it.choices))
    clean_lp = mc_choice_logprobs(model, tok, [it])[0]
    assert torch.allclose(fit_lp, guard_lp, atol=1e-5)
    assert not torch.allclose(fit_lp, clean_lp, atol=1e-3)

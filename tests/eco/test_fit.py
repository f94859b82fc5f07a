"""Fitting the corruption strength: both fitters hit their target; the root finder needs fewer evaluations."""

import math

import pytest
import torch

from forgetlab.eco.corrupter import Corrupter, GuardConfig
from forgetlab.eco.fit import check_disjoint, fit_bracket, fit_set_sha256, fit_strength, fit_zo
from forgetlab.eco.fit_curves import SHAPES, TARGETS, curve
from forgetlab.eco.mc import MCItem, mc_accuracy, mc_choice_logprobs, mc_metric
from forgetlab.errors import BadInput

FIT = [{"q": i} for i in range(5)]


def smooth(s, fit_set):
    """A monotone decreasing metric: 1 at s=0, 0.25 at s=3."""
    return 1.0 / (1.0 + s)


@pytest.mark.parametrize("method", ["bracket", "zo"])
def test_fitters_reach_target_on_smooth_metric(method):
    kw = {"hi": 1.0} if method == "bracket" else {"s0": 1.0}
    r = fit_strength(smooth, FIT, 0.25, method=method, tol=1e-3, max_evals=200, **kw)
    assert r.converged and abs(r.metric - 0.25) <= 1e-3 and abs(r.strength - 3.0) < 0.05
    assert r.n_evals == len(r.history) and r.fit_set_sha256 == fit_set_sha256(FIT) and r.fit_set_size == 5


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("scale", [0.01, 1.0, 100.0])
def test_zeroth_order_converges_with_its_defaults(shape, scale):
    """On monotone curves of every shape and at strengths four orders of magnitude apart, the zeroth-order fit
    reaches the target with the defaults `forgetlab eco fit --method zo` uses (s0 = 1, 60 evaluations)."""
    m = curve(shape, scale)
    r = fit_zo(lambda s, _: m(s), FIT, TARGETS[shape], s0=1.0, tol=0.05, max_evals=60)
    assert r.converged and abs(r.metric - TARGETS[shape]) <= 0.05, (r.metric, r.n_evals)


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
    # fit on one split, evaluate on the other; both balanced over the 4 colors (a constant guess scores 1/4)
    fit_set = [it for i, it in enumerate(items) if (i // 4) % 2 == 0]
    eval_set = [it for i, it in enumerate(items) if (i // 4) % 2 == 1]
    check_disjoint(fit_set, eval_set)
    base = mc_accuracy(mc_choice_logprobs(model, tok, eval_set), [it.answer for it in eval_set])
    assert base >= 0.9, "the tiny LM must know the answers before corruption"
    chance, tol = 0.25, 0.1
    metric = mc_metric(model, Corrupter(tok, GuardConfig("rand_noise_first_n", 0.0, 32, seed=0)))
    root = fit_bracket(metric, fit_set, chance, lo=0.0, hi=0.01, tol=tol)
    zo = fit_zo(metric, fit_set, chance, s0=0.01, tol=tol, max_evals=60)
    held_out = metric(root.strength, eval_set)
    print(f"\nbase acc {base:.3f}; root finder: s={root.strength:.3f} acc={root.metric:.3f} in {root.n_evals} "
          f"evals; zeroth-order: s={zo.strength:.3f} acc={zo.metric:.3f} in {zo.n_evals} evals; "
          f"eval-split acc at root s: {held_out:.3f}")
    assert root.converged and abs(root.metric - chance) <= tol
    assert zo.converged and abs(zo.metric - chance) <= tol
    assert held_out <= 0.5, "the fitted strength must also remove the knowledge on the evaluation split"


@pytest.mark.parametrize("entity_level", [False, True])
def test_fitting_sees_what_the_deployed_guard_feeds_the_model(color_lm, entity_level):
    """On a tokenizer that adds BOS, the log-probabilities a strength fit measures equal those the model gives
    when fed what the served guard feeds it (its corrupted prompt embeddings, BOS included, then the clean
    answer), whole-prompt and entity-level alike; and the corrupted positions follow the documented policy."""
    from forgetlab.eco.classify.keyword import KeywordClassifier
    from forgetlab.eco.classify.token import TokenClassifier
    from forgetlab.eco.guard import EcoGuard
    from forgetlab.eco.hooks import input_embeddings
    from forgetlab.testing.tiny_lm import build_tokenizer

    model, tok0, items = color_lm
    facts = {it.prompt.split()[0]: it.choices[it.answer].strip() for it in items}
    tok = build_tokenizer([f"{n} likes {c}" for n, c in facts.items()], vocab_size=300, add_bos=True)
    assert tok.get_vocab() == tok0.get_vocab()
    tclf = TokenClassifier.fit(list(facts)) if entity_level else None
    config = GuardConfig("rand_noise_first_n", 0.5, 32, seed=5, entity_tokens=entity_level)
    guard = EcoGuard(model, tok, KeywordClassifier(["likes"]), config, token_classifier=tclf)
    it = items[3]
    p_ids = tok(it.prompt).input_ids
    assert p_ids[0] == tok.bos_token_id
    fit_lp = mc_choice_logprobs(model, tok, [it], Corrupter(tok, config, tclf))[0]
    served = []
    with torch.no_grad():
        prompt_emb = guard.prompt_embeddings(it.prompt)  # [T, d]: what generate feeds for this prompt
        for c in it.choices:
            c_ids = tok(c, add_special_tokens=False).input_ids
            emb = torch.cat([prompt_emb, input_embeddings(model)(torch.tensor(c_ids))])
            logp = torch.log_softmax(model(inputs_embeds=emb[None]).logits[0].float(), -1)
            served.append(logp[len(p_ids) - 1:-1].gather(1, torch.tensor(c_ids)[:, None]).sum())
    assert torch.allclose(fit_lp, torch.stack(served), atol=1e-5)
    assert torch.allclose(fit_lp, guard.answer_logprobs([it.prompt] * 4, list(it.choices)), atol=1e-5)
    assert not torch.allclose(fit_lp, mc_choice_logprobs(model, tok, [it])[0], atol=1e-3)
    mask = guard.corruption_mask(torch.tensor([p_ids]), None, [True])[0]
    if entity_level:  # only the name's tokens: neither BOS nor " likes"
        name_ids = tok(it.prompt.split()[0], add_special_tokens=False).input_ids
        assert mask.tolist() == [False] + [True] * len(name_ids) + [False] * (len(p_ids) - 1 - len(name_ids))
    else:  # every prompt token but the last, BOS included
        assert mask.tolist() == [True] * (len(p_ids) - 1) + [False]

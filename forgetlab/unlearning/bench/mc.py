"""Multiple choice in the bench: the forget subject vs retained subjects, for the target and for ECO.

ECO is 2-fold cross-fitted: the classifier and the strength of fold f are fitted on the other fold's questions
(forget subject and retained subjects alike), so every question is scored once, by a guard that never saw it.
The corruption covers the whole prompt (subject-level forgetting) with its strength fitted to chance.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...eco.classify.prompt import PromptClassifier
from ...eco.fit import fit_bracket
from ...eco.select import STRENGTH_MAX
from ..lm import prompt_of
from ..scoring import Corruption, choice_logprobs
from .context import BenchContext

MC_CORRUPTION = "rand_noise_first_n"  # subject-level forgetting: the whole prompt, strength fitted to chance
MC_CHANCE = 0.25  # four choices


def _logprobs(ctx: BenchContext, rows: list[dict], corr: Corruption | None = None) -> np.ndarray:
    """Summed log-prob of each choice ``[N, 4]``."""
    return choice_logprobs(ctx.target, ctx.tokenizer, [prompt_of(r["question"]) for r in rows],
                           [[c + "." for c in r["choices"]] for r in rows], corruption=corr)


def _correct(ctx: BenchContext, rows: list[dict], corr: Corruption | None = None) -> np.ndarray:
    """``bool [N]``: is the highest-scoring choice the right one."""
    return _logprobs(ctx, rows, corr).argmax(axis=1) == np.array([r["label"] for r in rows])


def _fit_fold(ctx: BenchContext, fit_f: dict[str, list[dict]]) -> tuple[PromptClassifier, Any]:
    """The classifier and the fitted strength of one fold, from that fold's questions only."""
    fsub = ctx.world.forget_subject
    authors_q = [r["question"] for r in ctx.retain_fit]  # no utility author (held-out discipline)
    near_topic = [r["question"] for k, v in fit_f.items() if k != fsub for r in v]
    # the retained subjects' questions are near-topic negatives with a threshold of their own (a handful per
    # fold: their highest held-out score), not just more retain prompts under the authors' 1% quantile
    clf = PromptClassifier.fit([r["question"] for r in fit_f[fsub]], authors_q,
                               negatives={"retained_subjects": near_topic}, fpr=ctx.scale.classifier_fpr,
                               seed=ctx.seed)

    def mc_metric(strength: float, fit_set) -> float:
        # mean probability of the right choice, normalized over the choices: smooth, 0.25 = chance
        c = ctx.corruption(MC_CORRUPTION, strength, np.ones(len(fit_set), bool))
        lp = _logprobs(ctx, fit_set, c)
        p = np.exp(lp - lp.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        return float(np.mean(p[np.arange(len(fit_set)), [r["label"] for r in fit_set]]))

    res = fit_bracket(mc_metric, fit_f[fsub], MC_CHANCE, lo=0.0, hi=0.5, tol=0.02,
                      max_evals=ctx.scale.fit_max_evals, hi_max=STRENGTH_MAX)
    return clf, res


def mc_rows(ctx: BenchContext, with_eco: bool) -> list[dict[str, Any]]:
    """Accuracy per subject for the target and (cross-fitted) ECO."""
    mc = ctx.world.mc
    steps = 5 if with_eco else 1  # the target, then per fold: fit, score
    ctx.say("multiple choice", 0, steps)
    rows = [{"method": "target", **{k: float(np.mean(_correct(ctx, v))) for k, v in mc.items()}}]
    ctx.say("multiple choice", 1, steps)
    if not with_eco:
        return rows
    folds = {k: (v[0::2], v[1::2]) for k, v in mc.items()}
    hits: dict[str, list[bool]] = {k: [] for k in mc}
    flagged: dict[str, list[bool]] = {k: [] for k in mc}
    fold_fits = []
    for f in (0, 1):
        clf, res = _fit_fold(ctx, {k: v[f] for k, v in folds.items()})
        ctx.say("multiple choice", 2 + 2 * f, steps)
        fold_fits.append({"strength": res.strength, "n_evals": res.n_evals, "metric": res.metric,
                          "converged": res.converged})
        for k, v in ((k, v[1 - f]) for k, v in folds.items()):
            flags = clf.flag([r["question"] for r in v])
            flagged[k] += flags.tolist()
            corr = ctx.corruption(MC_CORRUPTION, res.strength, flags)
            hits[k] += _correct(ctx, v, corr).tolist()
        ctx.say("multiple choice", 3 + 2 * f, steps)
    rows.append({"method": "eco", **{k: float(np.mean(v)) for k, v in hits.items()},
                 "flagged": {k: float(np.mean(v)) for k, v in flagged.items()}, "folds": fold_fits})
    return rows

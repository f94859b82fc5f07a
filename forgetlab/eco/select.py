"""Choosing ECO's corruption without the retain model: match never-seen entities (the holdout surrogate).

A guard should make the model answer about a forget entity as it answers about entities it never saw. Those
"holdout" entities are known at fitting time (no evaluation item, no retain model is needed): the corruption
and strength whose corrupted fit-set scores look most like the holdout's win.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import ForgetlabError
from .corruptions import get_corruption
from .fit import fit_bracket

# Candidate corruptions, all on every hidden dim (k = hidden size). The fit keeps the one whose corrupted
# fit-set truth ratios are closest (KS statistic) to those of never-seen holdout authors; a candidate with a
# strength gets it from the bracketing root finder first (mean answer probability = the holdout's). A candidate
# whose search ends without reaching the holdout's probability (within ``tol``) is recorded as not converged and
# excluded from the choice: its KS statistic belongs to a strength that does not do what the fit asked.
ECO_CANDIDATES: tuple[str, ...] = ("rand_noise_first_n", "zero_out_first_n", "flip_sign_first_n")
# The strength search doubles up to this noise std (absolute): 2^12 times the start (0.5), far past any
# embedding's scale, so a candidate that still misses the target here plateaus above it (reported as such).
STRENGTH_MAX = 2048.0

# (corruption, strength) -> (mean normalized answer probability, per-item truth ratios) on the fit set
SurrogateScore = Callable[[str, float, bool], tuple[float, Any]]


def surrogate_ks(fit_tr, holdout_tr) -> tuple[float, float]:
    """(statistic, p-value) of the two-sample KS test between the fit set's per-item truth ratios ``[N]`` (under
    a candidate: a corruption, or an unlearned proxy model) and the never-seen holdout's ``[M]``: the holdout
    surrogate's distance, smaller = closer to never having seen the fit set. The one place it is computed (ECO's
    corruption choice and the bench's baseline tuning both call it)."""
    from scipy.stats import ks_2samp

    ks = ks_2samp(fit_tr, holdout_tr)
    return float(ks.statistic), float(ks.pvalue)


def select_corruption(score: SurrogateScore, holdout_prob: float, holdout_tr, *,
                      candidates: tuple[str, ...] = ECO_CANDIDATES, tol: float = 0.02,
                      max_evals: int = 24, hi_max: float = STRENGTH_MAX) -> tuple[str, float, dict[str, Any]]:
    """Zeroth-order fit of ECO's corruption against the holdout surrogate (no retain model needed).

    For each candidate with a strength, the bracketing root finder sets the strength so that the fit set's mean
    normalized answer probability equals the holdout authors' (``holdout_prob``); then every candidate is scored
    by the two-sample KS statistic between the fit set's truth ratios under it and the holdout's
    (``holdout_tr``). Returns (corruption, strength, record of every candidate); the smallest statistic among
    the candidates whose strength search converged wins (a non-converged one is kept on record with
    ``excluded``). ``score(name, strength, want_tr)`` returns (mean probability, truth ratios or None).
    """
    record: dict[str, Any] = {"holdout_prob": holdout_prob, "candidates": {}}
    best: tuple[float, str, float] | None = None
    for name in candidates:
        entry: dict[str, Any] = {}
        strength = 1.0
        if get_corruption(name).uses_strength:
            res = fit_bracket(lambda st, _fs, name=name: score(name, st, False)[0], [name], holdout_prob,
                              lo=0.0, hi=0.5, tol=tol, max_evals=max_evals, hi_max=hi_max)
            strength = res.strength
            entry.update(n_evals=res.n_evals, converged=res.converged, prob=res.metric)
            if not res.converged:
                entry["excluded"] = (f"strength search ended at {res.strength:.4g} (cap {hi_max:g}, "
                                     f"{res.n_evals} evaluations) with mean probability {res.metric:.4g}, "
                                     f"not within {tol} of the holdout's {holdout_prob:.4g}")
        prob, tr = score(name, strength, True)
        stat, pvalue = surrogate_ks(tr, holdout_tr)
        entry.update(strength=strength, prob=prob, ks_statistic=stat, ks_pvalue=pvalue)
        record["candidates"][name] = entry
        if "excluded" not in entry and (best is None or stat < best[0]):
            best = (stat, name, strength)
    if best is None:
        raise ForgetlabError("no ECO corruption candidate converged: " + "; ".join(
            f"{n}: {c['excluded']}" for n, c in record["candidates"].items()))
    record.update(corruption=best[1], strength=best[2], ks_statistic=best[0])
    return best[1], best[2], record

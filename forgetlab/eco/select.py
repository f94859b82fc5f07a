"""Choosing ECO's corruption without the retain model: match never-seen entities (the holdout surrogate).

A guard should make the model answer about a forget entity as it answers about entities it never saw. Those
"holdout" entities are known at fitting time (no evaluation item, no retain model is needed): the corruption
and strength under which the fit set's answers look most like the holdout's win. "Look like" is measured on
whole distributions, not on a mean: the surrogate distance is the larger of two two-sample KS statistics, one
between per-item truth ratios and one between per-item answer probabilities (fit set under the corruption vs the
target on the holdout). Forget quality is a KS test on truth ratios, so a fit that only matched a mean answer
probability could land on a strength whose truth-ratio distribution is still far off (issue 20).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .corruptions import get_corruption
from .fit import minimize_log

# Candidate corruptions, all on every hidden dim (k = hidden size): noise, zeroing, the sign flip, and the scaling
# x -> (1 - s) x that passes through zeroing (s = 1) and the flip (s = 2), so the fit can land between them.
ECO_CANDIDATES: tuple[str, ...] = ("rand_noise_first_n", "zero_out_first_n", "flip_sign_first_n", "scale_first_n")
# The strength range searched (absolute): from far below an embedding's scale to 2^11 above the first grid
# point, where noise has long swamped every embedding.
STRENGTH_RANGE: tuple[float, float] = (1.0 / 16.0, 2048.0)
STRENGTH_MAX = STRENGTH_RANGE[1]
"""The cap of a bracketing strength search (the multiple-choice fit doubles its bracket up to it)."""


@dataclass(frozen=True)
class Surrogate:
    """The target on never-seen holdout entities: per-item answer probabilities ``[M]`` and truth ratios ``[M]``."""

    prob: np.ndarray
    tr: np.ndarray

    @property
    def mean_prob(self) -> float:
        return float(np.mean(self.prob))


# (corruption, strength) -> (per-item answer probabilities [N], per-item truth ratios [N]) on the fit set
SurrogateScore = Callable[[str, float], tuple[Any, Any]]


def surrogate_ks(fit_tr, holdout_tr) -> tuple[float, float]:
    """(statistic, p-value) of the two-sample KS test between the fit set's per-item truth ratios ``[N]`` (under
    a candidate: a corruption, or an unlearned proxy model) and the never-seen holdout's ``[M]``: the holdout
    surrogate's distance, smaller = closer to never having seen the fit set. The one place it is computed (ECO's
    corruption choice and the bench's baseline tuning both call it)."""
    from scipy.stats import ks_2samp

    ks = ks_2samp(fit_tr, holdout_tr)
    return float(ks.statistic), float(ks.pvalue)


def surrogate_distance(prob, tr, holdout: Surrogate) -> dict[str, float]:
    """The fit set's distance to the holdout under one candidate: KS statistics of truth ratios and of answer
    probabilities, and ``distance``, the larger of the two (what the fit minimizes and the choice compares)."""
    ks_tr, p_tr = surrogate_ks(tr, holdout.tr)
    ks_prob, _ = surrogate_ks(prob, holdout.prob)
    return {"ks_statistic": ks_tr, "ks_pvalue": p_tr, "ks_prob": ks_prob, "distance": max(ks_tr, ks_prob),
            "prob": float(np.mean(prob))}


def _fit_candidate(score: SurrogateScore, name: str, holdout: Surrogate, max_evals: int,
                   strength_range: tuple[float, float]) -> dict[str, Any]:
    """One candidate's record: its strength (searched by :func:`~forgetlab.eco.fit.minimize_log` when it has
    one) and its distance to the holdout at that strength."""
    if not get_corruption(name).uses_strength:
        return {"strength": 1.0, "n_evals": 1, **surrogate_distance(*score(name, 1.0), holdout)}
    found: dict[float, dict[str, float]] = {}

    def distance(s: float) -> float:
        found[s] = surrogate_distance(*score(name, s), holdout)
        return found[s]["distance"]

    res = minimize_log(distance, *strength_range, max_evals=max_evals)
    return {"strength": res.strength, "n_evals": res.n_evals, **found[res.strength],
            "searched": [[s, d] for s, d in res.history]}


def select_corruption(score: SurrogateScore, holdout: Surrogate, *, candidates: tuple[str, ...] = ECO_CANDIDATES,
                      max_evals: int = 24, strength_range: tuple[float, float] = STRENGTH_RANGE
                      ) -> tuple[str, float, dict[str, Any]]:
    """Zeroth-order fit of ECO's corruption against the holdout surrogate (no retain model needed).

    Each candidate with a strength gets the strength in ``strength_range`` that minimizes the surrogate distance
    (:func:`surrogate_distance`, at most ``max_evals`` evaluations of the fit set); a strength-free one is
    scored once. The smallest distance wins (ties: the earlier candidate). ``score(name, strength)`` returns the
    fit set's per-item answer probabilities and truth ratios under that corruption. Returns (corruption,
    strength, record of every candidate with its evaluations).
    """
    record: dict[str, Any] = {"holdout_prob": holdout.mean_prob, "criterion": "max(KS truth ratio, KS probability)",
                              "candidates": {}}
    for name in candidates:
        record["candidates"][name] = _fit_candidate(score, name, holdout, max_evals, strength_range)
    best = min(record["candidates"], key=lambda n: record["candidates"][n]["distance"])
    chosen = record["candidates"][best]
    record.update(corruption=best, strength=chosen["strength"], distance=chosen["distance"],
                  ks_statistic=chosen["ks_statistic"],
                  n_evals=sum(c["n_evals"] for c in record["candidates"].values()))
    return best, chosen["strength"], record

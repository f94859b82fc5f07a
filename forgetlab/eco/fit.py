"""Fit the corruption strength so a metric on corrupted forget prompts reaches a target (ECO, Sec. 3.4).

Metric-agnostic: a metric is any ``metric(strength, fit_set) -> float`` (multiple-choice accuracy, a truth-ratio
distance...). Two fitters, both counting metric evaluations:

- :func:`fit_zo`, the paper's two-point zeroth-order estimator on the distance ``d(s) = |m(s) - target|``:
  ``g = (d(s + mu) - d(s - mu)) / (2 mu)``, ``s <- s - lr * g``, until ``d(s) <= tol``;
- :func:`fit_bracket`, a bracketing root finder for a monotone metric (Illinois false position, with bisection
  when it stalls, and ``hi`` doubled until the target is bracketed); ``integer=True`` for a ``k`` knob.

Both take the fit set explicitly and record its SHA-256 (:func:`fit_set_sha256`) in the :class:`FitResult`, so a
report can show the strength was not fitted on the evaluation split (:func:`check_disjoint` refuses overlap).
:func:`forgetlab.eco.mc.mc_metric` builds the multiple-choice metric for any HF causal LM; :data:`MC_METRICS` names
the metrics a strength can be fitted on.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import BadInput, check_choice
from ..registry import Registry
from ..runs import to_jsonable

Metric = Callable[[float, Sequence[Any]], float]


@dataclass
class FitResult:
    """Outcome of a fit: the strength, its metric value, evaluations used, and where it was fitted."""

    method: str
    strength: float
    metric: float
    target: float
    tol: float
    n_evals: int
    converged: bool
    fit_set_sha256: str
    fit_set_size: int
    history: list[tuple[float, float]] = field(default_factory=list)  # (strength, metric) per evaluation


def fit_set_sha256(fit_set: Sequence[Any]) -> str:
    """SHA-256 of the fit set as canonical JSON (items: dicts, dataclasses, strings...)."""
    blob = json.dumps(to_jsonable(list(fit_set)), sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def check_disjoint(fit_set: Sequence[Any], eval_set: Sequence[Any]) -> None:
    """Refuse a fit set that shares an item with the evaluation set (fitting on the test set)."""
    keys = {json.dumps(to_jsonable(x), sort_keys=True) for x in eval_set}
    shared = [x for x in fit_set if json.dumps(to_jsonable(x), sort_keys=True) in keys]
    if shared:
        raise BadInput("fit_set", f"{len(shared)} item(s) also in the evaluation set",
                       "a fit split disjoint from the evaluation split")


class _Counted:
    """Wraps a metric bound to the fit set; caches by strength and records every evaluation."""

    def __init__(self, metric: Metric, fit_set: Sequence[Any]):
        if len(fit_set) == 0:
            raise BadInput("fit_set", "empty", "at least one fit item")
        self.metric, self.fit_set = metric, fit_set
        self.history: list[tuple[float, float]] = []
        self._cache: dict[float, float] = {}

    def __call__(self, s: float) -> float:
        if s not in self._cache:
            v = float(self.metric(s, self.fit_set))
            if not math.isfinite(v):
                raise BadInput("metric", v, f"a finite number (metric at strength {s})")
            self._cache[s] = v
            self.history.append((s, v))
        return self._cache[s]

    def result(self, method: str, s: float, target: float, tol: float) -> FitResult:
        m = self(s)
        return FitResult(method, s, m, target, tol, len(self.history), abs(m - target) <= tol,
                         fit_set_sha256(self.fit_set), len(self.fit_set), list(self.history))


def _check_common(target: float, tol: float, max_evals: int) -> None:
    if not math.isfinite(target):
        raise BadInput("target", target, "a finite number")
    if not (tol > 0 and math.isfinite(tol)):
        raise BadInput("tol", tol, "a finite number > 0")
    if max_evals < 2:
        raise BadInput("max_evals", max_evals, "an integer >= 2")


def fit_zo(metric: Metric, fit_set: Sequence[Any], target: float, *, s0: float = 1.0, mu: float = 0.25,
           lr: float = 1.0, tol: float = 0.05, max_evals: int = 60, lo: float = 0.0,
           hi: float = math.inf, decay: float = 0.5) -> FitResult:
    """Two-point zeroth-order descent of ``d(s) = |metric(s) - target|`` from ``s0`` (ECO Sec. 3.4).

    Steps are clipped to ``[lo, hi]``. Where the estimate is exactly zero (a flat plateau of a discrete metric,
    e.g. accuracy 1.0 for tiny noise) ``mu`` is doubled rather than stalling, and ``lr`` is multiplied by
    ``decay`` whenever the estimate changes sign (with ``|.|`` the step does not shrink near the target, so a
    fixed ``lr`` oscillates); both are our additions, ``decay=1`` is the plain estimator. Stops when
    ``d(s) <= tol`` or after ``max_evals`` evaluations; returns the best strength seen.
    """
    _check_common(target, tol, max_evals)
    if mu <= 0 or lr <= 0:
        raise BadInput("mu/lr", (mu, lr), "positive numbers")
    if not 0 < decay <= 1:
        raise BadInput("decay", decay, "a number in (0, 1]")
    f = _Counted(metric, fit_set)
    s = min(max(s0, lo), hi)
    last_sign = 0.0
    while len(f.history) + 3 <= max_evals:
        if abs(f(s) - target) <= tol:
            break
        a, b = max(s - mu, lo), min(s + mu, hi)
        g = (abs(f(b) - target) - abs(f(a) - target)) / (b - a)
        if g == 0.0:
            mu *= 2
            continue
        if last_sign and math.copysign(1.0, g) != last_sign:
            lr *= decay
        last_sign = math.copysign(1.0, g)
        s = min(max(s - lr * g, lo), hi)
    best = min(f.history, key=lambda h: abs(h[1] - target))[0]
    return f.result("zo", best, target, tol)


def fit_bracket(metric: Metric, fit_set: Sequence[Any], target: float, *, lo: float = 0.0, hi: float = 1.0,
                tol: float = 0.05, max_evals: int = 40, integer: bool = False,
                hi_max: float = 1e6) -> FitResult:
    """Root of ``metric(s) - target`` for a monotone metric, bracketed in ``[lo, hi]`` (``hi`` doubled as needed).

    Illinois false position (an end retained twice has its value halved); stops when
    ``|metric(s) - target| <= tol``, or the bracket shrinks to one integer step (``integer=True``), or after
    ``max_evals``. Returns the best strength seen.
    """
    _check_common(target, tol, max_evals)
    if not (0 <= lo < hi):
        raise BadInput("lo/hi", (lo, hi), "0 <= lo < hi")
    rnd = (lambda x: float(round(x))) if integer else float
    f = _Counted(metric, fit_set)
    lo, hi = rnd(lo), rnd(hi)

    def done() -> FitResult:
        best = min(f.history, key=lambda h: abs(h[1] - target))[0]
        return f.result("bracket", best, target, tol)

    flo = f(lo) - target
    if abs(flo) <= tol:
        return done()
    fhi = f(hi) - target
    while flo * fhi > 0 and abs(fhi) > tol:  # not bracketed yet: move right
        if len(f.history) >= max_evals or hi * 2 > hi_max:
            return done()
        lo, flo = hi, fhi
        hi = rnd(hi * 2)
        fhi = f(hi) - target
    if abs(fhi) <= tol:
        return done()
    side = 0
    while len(f.history) < max_evals:
        if integer and hi - lo <= 1:
            break
        s = rnd((lo * fhi - hi * flo) / (fhi - flo))
        if integer:
            s = min(max(s, lo + 1), hi - 1)
        if not (lo < s < hi):  # false position degenerate in floating point: bisect
            s = rnd((lo + hi) / 2)
            if not (lo < s < hi):
                break
        fs = f(s) - target
        if abs(fs) <= tol:
            break
        if fs * fhi > 0:  # s replaces hi
            hi, fhi = s, fs
            if side == -1:
                flo /= 2  # Illinois: lo retained twice, halve its value
            side = -1
        else:
            lo, flo = s, fs
            if side == +1:
                fhi /= 2
            side = +1
    return done()


FIT_METHODS = ("bracket", "zo")


def fit_strength(metric: Metric, fit_set: Sequence[Any], target: float, method: str = "bracket",
                 **kwargs: Any) -> FitResult:
    """Dispatch to :func:`fit_bracket` (``"bracket"``) or :func:`fit_zo` (``"zo"``)."""
    check_choice("method", method, FIT_METHODS)
    return (fit_bracket if method == "bracket" else fit_zo)(metric, fit_set, target, **kwargs)


MC_METRICS: Registry[Callable[[Sequence[Any], Sequence[int]], float]] = Registry(
    "metric", {"mc_accuracy": "forgetlab.eco.mc:mc_accuracy", "mc_prob": "forgetlab.eco.mc:mc_prob"})
"""Multiple-choice metrics a strength can be fitted on (``metric(choice logprobs, answers) -> float``)."""

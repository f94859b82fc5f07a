"""Fit the corruption strength so a metric on corrupted forget prompts reaches a target (ECO, Sec. 3.4).

Metric-agnostic: a metric is any ``metric(strength, fit_set) -> float`` (multiple-choice accuracy, a truth-ratio
distance...). Two fitters, both counting metric evaluations:

- :func:`fit_zo`, a two-point zeroth-order descent on the distance ``d(s) = |m(s) - target|`` (the paper's
  estimator ``g = (d(s + mu) - d(s - mu)) / (2 mu)``), taken in ``log s`` with sign steps of adaptive size;
- :func:`fit_bracket`, a bracketing root finder for a monotone metric (Illinois false position, with bisection
  when it stalls, and ``hi`` doubled until the target is bracketed); ``integer=True`` for a ``k`` knob;
- :func:`minimize_log`, a zeroth-order minimizer of a distance that need not be monotone (a geometric grid, then
  golden-section search in ``log s`` around the grid's best point): what the distribution-matching fit uses.

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


def fit_zo(metric: Metric, fit_set: Sequence[Any], target: float, *, s0: float = 1.0, mu: float = 0.1,
           step: float = 1.0, tol: float = 0.05, max_evals: int = 60, lo: float = 0.0,
           hi: float = math.inf) -> FitResult:
    """Zeroth-order descent of ``d(s) = |metric(s) - target|`` from ``s0`` (ECO Sec. 3.4), in ``log s``.

    Each iteration estimates the slope of ``d`` from two evaluations at ``u +- mu`` (``u = log s``: strengths
    span orders of magnitude, and a relative probe fits all of them) and steps ``u`` against the slope's sign by
    ``step``. The step grows 1.5x while the direction holds and halves when it reverses (so near the target the
    iterates close in as a bisection would), and where both probes see the same value (a plateau of a discrete
    metric) ``mu`` doubles until the metric moves. This sign-based, adaptive form converges on monotone metrics
    whatever their scale or shape (exponential, logistic, step-like: ``docs/benchmarks/eco.md``), where a fixed
    learning rate times the raw estimate (the reference's update) stalls on flat parts and overshoots on steep
    ones. Stops when ``d(s) <= tol`` or after ``max_evals`` evaluations; returns the best strength seen.
    """
    _check_common(target, tol, max_evals)
    if mu <= 0 or step <= 0:
        raise BadInput("mu/step", (mu, step), "positive numbers")
    if not (math.isfinite(s0) and s0 > 0):
        raise BadInput("s0", s0, "a finite number > 0 (the search runs in log s)")
    f = _Counted(metric, fit_set)
    floor = max(lo, 1e-12)
    u, lo_u, hi_u = math.log(min(max(s0, floor), hi)), math.log(floor), math.log(hi) if hi < math.inf else math.inf
    clip = lambda x: min(max(x, lo_u), hi_u)  # noqa: E731
    last = 0.0
    while len(f.history) + 3 <= max_evals:
        if abs(f(math.exp(u)) - target) <= tol:
            break
        a, b = clip(u - mu), clip(u + mu)
        g = abs(f(math.exp(b)) - target) - abs(f(math.exp(a)) - target)
        if g == 0.0:
            mu *= 2
            continue
        direction = -math.copysign(1.0, g)
        step = step * 1.5 if direction == last else step * 0.5 if last else step
        last = direction
        u = clip(u + direction * step)
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


@dataclass
class MinResult:
    """Outcome of :func:`minimize_log`: the best strength, its value, and every (strength, value) evaluated."""

    strength: float
    value: float
    history: list[tuple[float, float]]

    @property
    def n_evals(self) -> int:
        """Evaluations made: one per distinct strength in ``history``."""
        return len(self.history)


GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def minimize_log(f: Callable[[float], float], lo: float, hi: float, *, max_evals: int = 24,
                 grid: int | None = None) -> MinResult:
    """Minimize ``f(s)`` over ``lo <= s <= hi`` with at most ``max_evals`` calls: ``grid`` points spaced
    geometrically (default: half the budget, at least 3), then golden-section search in ``log s`` between the
    best grid point's neighbours. The smallest value seen wins; ties go to the smaller strength (the gentler
    corruption). Zeroth-order: no gradient, no monotonicity needed (a KS distance over strength has plateaus)."""
    if not (0 < lo < hi and math.isfinite(hi)):
        raise BadInput("strength range", (lo, hi), "0 < lo < hi < inf")
    if max_evals < 3:
        raise BadInput("max_evals", max_evals, "an integer >= 3")
    n = min(max_evals, max(3, grid if grid is not None else max_evals // 2))
    seen: dict[float, float] = {}

    def at(log_s: float) -> float:
        s = math.exp(log_s)
        if s not in seen:
            v = float(f(s))
            if not math.isfinite(v):
                raise BadInput("distance", v, f"a finite number (at strength {s:g})")
            seen[s] = v
        return seen[s]

    a, b = math.log(lo), math.log(hi)
    logs = [a + (b - a) * i / (n - 1) for i in range(n)]
    values = [at(x) for x in logs]
    i = min(range(n), key=lambda j: (values[j], j))
    a, b = logs[max(i - 1, 0)], logs[min(i + 1, n - 1)]
    c, d = b - GOLDEN * (b - a), a + GOLDEN * (b - a)
    while len(seen) + 2 <= max_evals and b - a > 1e-3:
        if at(c) <= at(d):
            b, d = d, c
            c = b - GOLDEN * (b - a)
        else:
            a, c = c, d
            d = a + GOLDEN * (b - a)
    best = min(seen, key=lambda s: (seen[s], s))
    return MinResult(best, seen[best], list(seen.items()))


FIT_METHODS = ("bracket", "zo")


def fit_strength(metric: Metric, fit_set: Sequence[Any], target: float, method: str = "bracket",
                 **kwargs: Any) -> FitResult:
    """Dispatch to :func:`fit_bracket` (``"bracket"``) or :func:`fit_zo` (``"zo"``)."""
    check_choice("method", method, FIT_METHODS)
    return (fit_bracket if method == "bracket" else fit_zo)(metric, fit_set, target, **kwargs)


MC_METRICS: Registry[Callable[[Sequence[Any], Sequence[int]], float]] = Registry(
    "metric", {"mc_accuracy": "forgetlab.eco.mc:mc_accuracy", "mc_prob": "forgetlab.eco.mc:mc_prob"})
"""Multiple-choice metrics a strength can be fitted on (``metric(choice logprobs, answers) -> float``)."""

"""Fit the corruption strength so a metric on corrupted forget prompts reaches a target (ECO, Sec. 3.4).

Metric-agnostic: a metric is any ``metric(strength, fit_set) -> float`` (multiple-choice accuracy, a truth-ratio
distance...). Two fitters, both counting metric evaluations:

- :func:`fit_zo`, the paper's two-point zeroth-order estimator on the distance ``d(s) = |m(s) - target|``:
  ``g = (d(s + mu) - d(s - mu)) / (2 mu)``, ``s <- s - lr * g``, until ``d(s) <= tol``;
- :func:`fit_bracket`, a bracketing root finder for a monotone metric (Illinois false position, with bisection
  when it stalls, and ``hi`` doubled until the target is bracketed); ``integer=True`` for a ``k`` knob.

Both take the fit set explicitly and record its SHA-256 (:func:`fit_set_sha256`) in the :class:`FitResult`, so a
report can show the strength was not fitted on the evaluation split (:func:`check_disjoint` refuses overlap).
:func:`mc_metric` builds the multiple-choice metric for any HF causal LM.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import BadInput, check_choice

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
    from ..runs import to_jsonable

    blob = json.dumps(to_jsonable(list(fit_set)), sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def check_disjoint(fit_set: Sequence[Any], eval_set: Sequence[Any]) -> None:
    """Refuse a fit set that shares an item with the evaluation set (fitting on the test set)."""
    from ..runs import to_jsonable

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


def fit_strength(metric: Metric, fit_set: Sequence[Any], target: float, method: str = "bracket",
                 **kwargs: Any) -> FitResult:
    """Dispatch to :func:`fit_bracket` (``"bracket"``) or :func:`fit_zo` (``"zo"``)."""
    check_choice("method", method, ("bracket", "zo"))
    return (fit_bracket if method == "bracket" else fit_zo)(metric, fit_set, target, **kwargs)


# ------------------------------------------------------------------------------------ multiple-choice metric


@dataclass(frozen=True)
class MCItem:
    """A multiple-choice question: ``prompt``, the ``choices`` (continuations), index of the right ``answer``."""

    prompt: str
    choices: tuple[str, ...]
    answer: int

    @classmethod
    def from_dict(cls, obj: dict, where: str = "item") -> MCItem:
        """Validate a JSON object ``{"prompt"|"question", "choices", "answer"}``; errors name ``where``."""
        prompt = obj.get("prompt", obj.get("question"))
        choices = obj.get("choices")
        answer = obj.get("answer")
        if not isinstance(prompt, str) or not prompt:
            raise BadInput(f"{where}.prompt", prompt, "a non-empty string")
        if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) and c for c in choices):
            raise BadInput(f"{where}.choices", choices, "a list of >= 2 non-empty strings")
        if isinstance(answer, str) and answer in choices:
            answer = choices.index(answer)
        if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(choices):
            raise BadInput(f"{where}.answer", answer, f"an index in [0, {len(choices)}) or one of the choices")
        return cls(prompt, tuple(choices), answer)


@torch.no_grad()
def mc_choice_logprobs(model, tokenizer, items: Sequence[MCItem], corruption: str | None = None,
                       strength: float = 0.0, k: int = 0, seed: int = 0, batch_size: int = 64) -> list[torch.Tensor]:
    """Sum of log-probs of each choice given its prompt, the prompt part corrupted: one ``[n_choices]`` per item.

    Sequences are ``prompt ids + choice ids``, right padded; only prompt positions are corrupted (all items are
    treated as flagged). Each row's noise is seeded from ``seed`` and its prompt tokens, as an ``EcoGuard`` does
    (:func:`~forgetlab.eco.hooks.token_seed`): all choices of an item see the same corrupted prompt, and the same
    noise is used at every strength (common random numbers: the metric is a deterministic function of it).
    """
    from .hooks import corrupt_embeddings, token_seed

    rows = []  # (item index, prompt ids, choice ids)
    for i, it in enumerate(items):
        p = tokenizer(it.prompt, add_special_tokens=False).input_ids
        for c in it.choices:
            rows.append((i, p, tokenizer(c, add_special_tokens=False).input_ids))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    scores: list[list[float]] = [[] for _ in items]
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        L = max(len(p) + len(c) for _, p, c in chunk)
        ids = torch.full((len(chunk), L), pad, dtype=torch.long)
        attn = torch.zeros_like(ids)
        pmask = torch.zeros_like(ids, dtype=torch.bool)
        for r, (_, p, c) in enumerate(chunk):
            ids[r, :len(p) + len(c)] = torch.tensor(p + c)
            attn[r, :len(p) + len(c)] = 1
            pmask[r, :len(p)] = True
        ids, attn = ids.to(device), attn.to(device)
        if corruption is None:
            logits = model(input_ids=ids, attention_mask=attn).logits
        else:
            seeds = [token_seed(seed, torch.tensor(p)) for _, p, _ in chunk]
            with corrupt_embeddings(model, pmask, corruption, strength, k, row_seeds=seeds):
                logits = model(input_ids=ids, attention_mask=attn).logits
        logp = torch.log_softmax(logits.float(), dim=-1)
        for r, (i, p, c) in enumerate(chunk):
            pos = torch.arange(len(p) - 1, len(p) + len(c) - 1, device=device)
            scores[i].append(logp[r, pos, torch.tensor(c, device=device)].sum().item())
    return [torch.tensor(s) for s in scores]


def mc_accuracy(logprobs: Sequence[torch.Tensor], items: Sequence[MCItem]) -> float:
    """Fraction of items whose highest-scoring choice is the answer."""
    return sum(int(lp.argmax().item() == it.answer) for lp, it in zip(logprobs, items, strict=True)) / len(items)


def mc_prob(logprobs: Sequence[torch.Tensor], items: Sequence[MCItem]) -> float:
    """Mean probability of the answer, normalised over the choices (smooth; chance is ``1 / n_choices``)."""
    return sum(torch.softmax(lp, 0)[it.answer].item() for lp, it in zip(logprobs, items, strict=True)) / len(items)


MC_METRICS = {"mc_accuracy": mc_accuracy, "mc_prob": mc_prob}


def mc_metric(model, tokenizer, corruption: str, *, k: int = 0, seed: int = 0, which: str = "mc_accuracy",
              knob: str = "strength") -> Metric:
    """``metric(s, fit_set)`` for :func:`fit_strength`: a multiple-choice metric with the corruption at ``s``.

    ``knob="strength"`` turns ``s`` into the strength (sigma or value, with ``k`` dims); ``knob="k"`` turns it
    into the number of dims (zeroing / sign flips).
    """
    check_choice("metric", which, MC_METRICS)
    check_choice("knob", knob, ("strength", "k"))
    score = MC_METRICS[which]

    def metric(s: float, fit_set: Sequence[MCItem]) -> float:
        strength, kk = (s, k) if knob == "strength" else (0.0, round(s))
        lp = mc_choice_logprobs(model, tokenizer, fit_set, corruption, strength, kk, seed)
        return score(lp, fit_set)

    return metric

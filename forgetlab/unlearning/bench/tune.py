"""The baselines' learning rate and epochs, chosen by ECO's rule: the holdout surrogate, on no evaluation item and
without the retain model.

ECO's corruption is the candidate whose fit-set truth ratios look most like never-seen holdout authors'
(:func:`~forgetlab.eco.select.surrogate_ks`). A baseline is tuned the same way: for each (lr, epochs) point of
the scale's grid (``Scale.tune_grid``), a copy of the target is unlearned on the *fit set* (trained authors
outside every forget split) as a proxy forget set, with retain batches from other retain authors (GD, NPO, RMU),
and scored by the same KS statistic against the target's holdout truth ratios. A proxy can reach the holdout's
truth ratios by wrecking the model, so a *utility floor* guards the choice: the mean answer probability on floor
authors (a quarter of the tuning's retain authors, held back: no tuning step trains on them) must stay
>= ``Scale.tune_floor`` x the target's. The smallest KS among the points that pass wins; when none passes, the
point with the highest floor ratio is taken and the record says so. The proxy does not depend on the forget
split, so tuning runs once per seed and the chosen point is run on every split. Points sharing a learning rate
share one run: the state after epoch e of the longest is the state an e-epoch run ends in (constant learning rate,
the same seeded batches), scored when that epoch ends.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ...eco.select import surrogate_ks
from ...errors import ForgetlabError
from ..baselines import METHODS, UnlearnConfig
from ..evaluate import qa_scores
from ..lm import load_lm
from ..metrics import truth_ratio
from ..world import World
from .context import BenchContext
from .heldout import check_pair
from .splits import retain_fit_items


@dataclass(frozen=True)
class TuningSets:
    """The items tuning sees: ``forget`` (the proxy forget set: the corruption's fit set), ``retain`` (retain
    batches of GD/NPO/RMU) and ``floor`` (the utility floor's items, never trained on while tuning)."""

    forget: list[dict[str, Any]]
    retain: list[dict[str, Any]]
    floor: list[dict[str, Any]]


def tuning_sets(world: World, retain_eval: list[dict[str, Any]], fit_items: list[dict[str, Any]],
                floor_share: float) -> TuningSets:
    """Split the baseline retain set's authors outside the fit set into tuning retain authors and floor authors
    (the last ``floor_share`` of them, at least one), by author so the floor is unseen by every tuning step."""
    fit_authors = {r["entity"] for r in fit_items}
    pool = [r for r in retain_fit_items(world, retain_eval) if r["entity"] not in fit_authors]
    authors = list(dict.fromkeys(r["entity"] for r in pool))
    if len(authors) < 2:
        raise ForgetlabError(f"baseline tuning needs >= 2 retain authors outside the fit set; this world has "
                             f"{len(authors)} (use --no-tune or a larger world)")
    n_floor = min(len(authors) - 1, max(1, int(len(authors) * floor_share)))
    floor_authors = set(authors[-n_floor:])
    sets = TuningSets(list(fit_items), [r for r in pool if r["entity"] not in floor_authors],
                      [r for r in pool if r["entity"] in floor_authors])
    for name, items in (("baseline tuning proxy forget set", sets.forget), ("baseline tuning retain set",
                                                                            sets.retain)):
        check_pair(name, items, "baseline tuning floor set", sets.floor, by_entity=True)
    return sets


def answer_prob(model: Any, tokenizer: Any, items: list[dict[str, Any]]) -> float:
    """Mean answer probability (length-normalized, EOS included, as ECO's fit measures it) of ``items``."""
    rows = [{"question": r["question"], "answer": r["answer"]} for r in items]  # answers only: no para/pert
    return float(np.mean(np.exp(qa_scores(model, tokenizer, rows)["answer"])))


def choose_point(points: list[dict[str, Any]], floor: float) -> tuple[int, str, bool]:
    """(index, why, fallback): the smallest ``ks_statistic`` among the points whose ``floor_ratio`` is >=
    ``floor`` (the earlier point on a tie); if none passes, the point with the highest floor ratio (fallback)."""
    passing = [i for i, p in enumerate(points) if p["floor_ratio"] >= floor]
    if passing:
        best = min(passing, key=lambda i: (_finite(points[i]["ks_statistic"]), i))
        return best, (f"smallest KS statistic ({points[best]['ks_statistic']:.3f}) among the {len(passing)} of "
                      f"{len(points)} grid points whose floor ratio is >= {floor:g}"), False
    best = min(range(len(points)), key=lambda i: (_finite(-points[i]["floor_ratio"]), i))
    return best, (f"fallback: no grid point kept the floor ratio >= {floor:g}; the one with the highest floor "
                  f"ratio ({points[best]['floor_ratio']:.3f}) is used"), True


def _finite(x: float) -> float:
    """``x``, with NaN ranked last (as +inf)."""
    return math.inf if x is None or math.isnan(x) else float(x)


@dataclass(frozen=True)
class TuneReference:
    """The target's side of the rule: its holdout truth ratios ``[M]`` and its floor-set answer probability."""

    holdout_tr: np.ndarray
    floor_prob: float


def score_proxy(model: Any, tokenizer: Any, sets: TuningSets, ref: TuneReference) -> dict[str, float]:
    """One unlearned proxy's numbers: the surrogate KS statistic (and p-value) of its fit-set truth ratios vs the
    target's holdout ones, its fit-set answer probability, its floor-set answer probability and floor ratio."""
    q = qa_scores(model, tokenizer, sets.forget)
    stat, pvalue = surrogate_ks(truth_ratio(q["para"], q["pert"]), ref.holdout_tr)
    floor_prob = answer_prob(model, tokenizer, sets.floor)
    return {"ks_statistic": stat, "ks_pvalue": pvalue, "proxy_forget_prob": float(np.mean(np.exp(q["answer"]))),
            "floor_prob": floor_prob,
            "floor_ratio": floor_prob / ref.floor_prob if ref.floor_prob > 0 else float("nan")}


def score_lr(ctx: BenchContext, method: str, sets: TuningSets, ref: TuneReference, lr: float,
             epochs: list[int]) -> list[dict[str, Any]]:
    """The grid points (``lr``, e) for every e in ``epochs`` from one run of max(epochs) epochs on a copy of the
    target, each scored when its epoch ends (the state a run of e epochs ends in). A point's ``seconds`` is the
    wall time since the previous point of the run (its training epochs and its scoring)."""
    model, _ = load_lm(ctx.models.target)
    want, points, mark = set(epochs), [], [time.perf_counter()]

    def at_epoch(epoch: int, m: Any) -> None:
        if epoch in want:
            points.append({"lr": lr, "epochs": epoch, **score_proxy(m, ctx.tokenizer, sets, ref),
                           "seconds": time.perf_counter() - mark[0]})
            mark[0] = time.perf_counter()

    METHODS.get(method)(replace(UnlearnConfig(), lr=lr, epochs=max(epochs))).unlearn(
        model, ctx.tokenizer, sets.forget, sets.retain, on_epoch=at_epoch)
    return points


def matching_epochs(epochs: int, n_proxy: int, n_forget: int, batch_size: int = UnlearnConfig.batch_size) -> int:
    """Epochs on ``n_forget`` items that make about the updates ``epochs`` made on the ``n_proxy``-item proxy
    (at least 1). A point tuned as "2 epochs" on a 304-item proxy is 20 updates; on a 49-item forget split, 2
    epochs would be 4, and the tuned method would barely move the model (measured at default scale)."""
    per_epoch = lambda n: -(-n // batch_size)  # noqa: E731 (batches per epoch; the last one may be short)
    return max(1, round(epochs * per_epoch(n_proxy) / per_epoch(max(n_forget, 1))))


class BaselineTuner:
    """Tunes each baseline once per seed (the proxy is split-independent); :meth:`config` gives the chosen
    :class:`UnlearnConfig` and ``records`` what was tried, for ``results.json``."""

    def __init__(self, ctx: BenchContext) -> None:
        self.ctx = ctx
        self.sets = tuning_sets(ctx.world, ctx.retain_eval, ctx.fit_items, ctx.scale.tune_floor_share)
        self._ref: TuneReference | None = None
        self.records: dict[str, dict[str, Any]] = {}

    def reference(self) -> TuneReference:
        """The target's holdout truth ratios (shared with ECO's fit) and floor probability, computed once."""
        if self._ref is None:
            self._ref = TuneReference(self.ctx.holdout_surrogate().tr,
                                      answer_prob(self.ctx.target, self.ctx.tokenizer, self.sets.floor))
        return self._ref

    def config(self, method: str, n_forget: int | None = None) -> UnlearnConfig:
        """The chosen config of ``method`` (tuned on first use), for a forget set of ``n_forget`` items: its epochs
        give as many optimizer updates as the chosen point made on the proxy (:func:`matching_epochs`)."""
        if method not in self.records:
            self.records[method] = self.tune(method)
        c = self.records[method]["chosen"]
        epochs = c["epochs"] if n_forget is None else matching_epochs(c["epochs"], len(self.sets.forget), n_forget)
        return replace(UnlearnConfig(), lr=c["lr"], epochs=epochs)

    def tune(self, method: str) -> dict[str, Any]:
        """Score every grid point of ``method`` (one run per learning rate, :func:`score_lr`) and choose one
        (:func:`choose_point`); the record of it all, points in grid order."""
        ctx, grid, t0 = self.ctx, self.ctx.scale.tune_grid, time.perf_counter()
        ref, found = self.reference(), {}
        lrs = list(dict.fromkeys(lr for lr, _ep in grid))
        for i, lr in enumerate(lrs):
            ctx.say(f"tune {method}", i, len(lrs))
            for p in score_lr(ctx, method, self.sets, ref, lr, sorted({ep for r, ep in grid if r == lr})):
                found[(p["lr"], p["epochs"])] = p
        ctx.say(f"tune {method}", len(lrs), len(lrs))
        points = [found[(lr, ep)] for lr, ep in grid]
        idx, why, fallback = choose_point(points, ctx.scale.tune_floor)
        return {"grid": [list(p) for p in grid], "points": points, "chosen": {k: points[idx][k] for k in
                                                                              ("lr", "epochs")},
                "chosen_index": idx, "why": why, "fallback": fallback, "floor_fraction": ctx.scale.tune_floor,
                "target_floor_prob": ref.floor_prob, "proxy_forget_set": len(self.sets.forget),
                "retain_set": len(self.sets.retain), "floor_set": len(self.sets.floor),
                "floor_authors": len({r["entity"] for r in self.sets.floor}),
                "seconds": time.perf_counter() - t0}

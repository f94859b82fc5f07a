"""ECO inside the bench: fit the flag rule and the corruption without evaluation items, then score the guard.

The corruption is chosen once per protocol on the fit set (:class:`CorruptionFit`, the holdout surrogate of
:mod:`forgetlab.eco.select`); the flag rule is trained per forget split; the guard is scored on the split with
both protocols (*deployment*: only the prompt corrupted, as served; *paper*: the forget-entity tokens inside the
scored answer too, as the official ECO evaluation).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...eco.classify.entity_sets import EntitySets, entity_sets, without_names
from ...eco.classify.prompt import PromptClassifier
from ...eco.classify.rule import FlagRule
from ...eco.classify.token import TokenClassifier
from ...eco.guard import EcoGuard, GuardConfig
from ...eco.select import select_corruption
from ..evaluate import EvalData, qa_scores
from ..metrics import truth_ratio
from ..scoring import Corruption
from ..world import World
from .context import BenchContext
from .reference import Reference
from .table import row

PROTOCOLS = ("deployment", "paper")


@dataclass
class EcoSetup:
    """A fitted ECO for one forget target: the flag rule (prompt classifier, optionally OR an entity match),
    the token classifier, one corruption and strength per protocol, the fit records and the flag rule's rates
    on held-out paraphrases (``fpr``/``fnr``; ``classifier_fpr``/``classifier_fnr``: the classifier alone) and
    its false-positive rate on authors no part of the rule ever saw (``fpr_unseen``, ``classifier_fpr_unseen``;
    their words are not among the token classifier's known retain words either)."""

    rule: Any  # forgetlab.eco.guard.FlagRule: the classifier, the token classifier, whether names flag
    corruption: dict[str, str]
    strength: dict[str, float]
    fit: dict[str, dict[str, Any]]
    fpr: float
    fnr: float
    classifier_fpr: float
    classifier_fnr: float
    fpr_unseen: float
    classifier_fpr_unseen: float
    seconds: float


def setup_eco(forget_prompts: list[str], retain_prompts: list[str], forget_para: list[str],
              retain_para: list[str], entities: list[str], fit: Callable[[str], tuple[str, float, dict]],
              protocols: tuple[str, ...], *, unseen: list[str] | None = None, fpr: float = 0.01, seed: int = 0,
              flag_entities: bool = True, extra: EntitySets | None = None) -> EcoSetup:
    """Train the prompt classifier (forget vs retain prompts, plus ``extra``'s negatives), build the token
    classifier for the forget entities (and ``extra``'s references), measure the flag rule's FPR/FNR on held-out
    paraphrases, and fit the corruption of each protocol with ``fit(protocol)`` (on a fit set, never the
    evaluation split)."""
    t0 = time.perf_counter()
    extra = extra or EntitySets()
    clf = PromptClassifier.fit(forget_prompts, retain_prompts, negatives=extra.negatives, fpr=fpr, seed=seed)
    tcl = TokenClassifier.fit(entities, retain=retain_prompts, fallback="all", references=extra.references)
    rule = FlagRule(clf, tcl, flag_entities)

    def rates(prompts: list[str]) -> tuple[float, float]:
        """(flag rule, classifier alone) flagged fractions; the classifier runs once."""
        if not prompts:
            return float("nan"), float("nan")
        own, _scores, names = rule.parts(prompts)
        return float(np.mean(own | names)), float(np.mean(own))

    (f_rule, f_clf), (r_rule, r_clf), (u_rule, u_clf) = rates(forget_para), rates(retain_para), rates(unseen or [])
    corruption, strength, fits = {}, {}, {}
    for proto in protocols:
        corruption[proto], strength[proto], fits[proto] = fit(proto)
    return EcoSetup(rule, corruption, strength, fits, r_rule, 1 - f_rule, r_clf, 1 - f_clf, u_rule, u_clf,
                    time.perf_counter() - t0)


class CorruptionFit:
    """ECO's corruption per protocol, fitted once on the fit set against never-seen holdout authors (no
    evaluation item, no retain model); name-free answers score both protocols the same, so fit once."""

    def __init__(self, ctx: BenchContext) -> None:
        self.ctx = ctx
        self.holdout = ctx.holdout_surrogate()
        self.records: dict[str, tuple[str, float, dict[str, Any]]] = {}

    def _score(self, key: str, tc: TokenClassifier, name: str, strength: float) -> tuple[np.ndarray, np.ndarray]:
        """(per-item answer probabilities, per-item truth ratios) ``[N]`` of the fit set under one corruption."""
        items = self.ctx.fit_items
        c = self.ctx.corruption(name, strength, np.ones(len(items), bool), key, tc)
        q = qa_scores(self.ctx.target, self.ctx.tokenizer, items, c)
        return np.exp(q["answer"]), truth_ratio(q["para"], q["pert"])

    def __call__(self, proto: str) -> tuple[str, float, dict[str, Any]]:
        key = proto if self.ctx.answers == "tofu" else "deployment"
        if key not in self.records:
            items = self.ctx.fit_items
            tc = TokenClassifier.fit(sorted({r["entity"] for r in items}))
            name, st, rec = select_corruption(lambda n, s: self._score(key, tc, n, s), self.holdout,
                                              max_evals=self.ctx.scale.fit_max_evals)
            rec.update(fit_set_size=len(items), holdout_size=len(self.ctx.holdout_fit))
            self.records[key] = (name, st, rec)
        return self.records[key]


def flag_rule_negatives(world: World, retain_eval: list[dict[str, Any]],
                        split: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(trained authors' items, multiple-choice items) the flag rule of ``split`` trains and calibrates on as
    negatives: authors outside the split and outside the utility set, and the MC questions; never a utility
    item (retain-eval authors, painters, world facts) nor a holdout author."""
    scored = {r["entity"] for r in retain_eval}
    drop = set(world.splits[split]) | scored
    others = [r for n in world.trained_authors(exclude=drop) for r in world.authors[n]]
    return others, [r for rows_ in world.mc.values() for r in rows_]


def flag_rule_extra(world: World, retain_eval: list[dict[str, Any]], split: str, seed: int,
                    fpr: float) -> EntitySets:
    """The split's unseen-entity negatives and references, as ``eco fit`` builds them
    (:func:`~forgetlab.eco.classify.entity_sets.entity_sets`). A swapped-in name can be a scored person's (the
    name pools overlap): such rewrites are dropped, so the flag rule never trains on a holdout author, a
    utility author or a painter, and its FPR on never-seen authors stays a held-out figure."""
    forget = world.forget(split)
    others, mc = flag_rule_negatives(world, retain_eval, split)
    extra = entity_sets([r["question"] for r in forget], [r["question"] for r in others + mc],
                        list(world.splits[split]), forget_texts=[r["answer"] for r in forget],
                        retain_texts=[r["answer"] for r in others], seed=seed, fpr=fpr)
    scored = set(world.holdout) | {r["entity"] for r in retain_eval + world.painters}
    extra.negatives = {k: without_names(v, scored) for k, v in extra.negatives.items()}
    return extra


def _flag_rule_sets(ctx: BenchContext, split: str) -> tuple[list[str], list[str], list[str], list[str], list[str]]:
    """(forget questions, retain questions, forget paraphrases, retain paraphrases, never-seen authors'
    questions and paraphrases) for training and measuring one split's flag rule."""
    world = ctx.world
    forget = world.forget(split)
    others, mc = flag_rule_negatives(world, ctx.retain_eval, split)
    retain_q = [r["question"] for r in others + mc]
    unseen = [r[k] for r in world.items(world.holdout) for k in ("question", "paraphrased_question")]
    return ([r["question"] for r in forget], retain_q, [r["paraphrased_question"] for r in forget],
            [r["paraphrased_question"] for r in others], unseen)


def eco_rows(ctx: BenchContext, split: str, data: EvalData, ref: Reference,
             fitter: CorruptionFit) -> list[dict[str, Any]]:
    """Fit ECO's flag rule for ``split``, then score the guard under both protocols: one row each."""
    forget_q, retain_q, para_f, para_r, unseen = _flag_rule_sets(ctx, split)
    fit_reused = bool(fitter.records)  # the corruption fit runs once (first split); later splits reuse it
    extra = flag_rule_extra(ctx.world, ctx.retain_eval, split, ctx.seed, ctx.scale.classifier_fpr)
    eco = setup_eco(forget_q, retain_q, para_f, para_r, list(ctx.world.splits[split]), fitter, PROTOCOLS,
                    unseen=unseen, fpr=ctx.scale.classifier_fpr, seed=ctx.seed, flag_entities=ctx.flag_entities,
                    extra=extra)
    rows = []
    tcl = eco.rule.token_classifier
    for proto in PROTOCOLS:
        t1 = time.perf_counter()
        guard = EcoGuard(ctx.target, ctx.tokenizer, eco.rule.classifier,
                         GuardConfig(eco.corruption[proto], eco.strength[proto], ctx.hidden, ctx.seed,
                                     flag_entities=ctx.flag_entities, entity_tokens=ctx.entity_level),
                         token_classifier=tcl, model_path=ctx.models.target)
        saved = (guard.save_pretrained(ctx.guards_dir / f"{split}-{proto}", overwrite=True)
                 if ctx.guards_dir is not None else None)
        corr = Corruption(guard.corrupter, np.zeros(0, bool), proto, answer_entities=tcl)
        e = ctx.evaluate(ctx.target, data, eco=corr, guard=guard, flagger=guard.classify)
        r = row(split, "eco", proto, e.summary, ref.compare(e),
                time.perf_counter() - t1 + (eco.seconds if proto == PROTOCOLS[0] else 0.0),
                corruption=eco.corruption[proto], strength=eco.strength[proto], fit=eco.fit[proto])
        r.update(classifier_fpr=eco.fpr, classifier_fnr=eco.fnr, classifier_only_fpr=eco.classifier_fpr,
                 classifier_only_fnr=eco.classifier_fnr, classifier_fpr_unseen_authors=eco.fpr_unseen,
                 corruption_fit_reused=fit_reused,  # then `seconds` holds no fit time
                 classifier_only_fpr_unseen_authors=eco.classifier_fpr_unseen,
                 classifier_report=eco.rule.classifier.report, guard=None if saved is None else str(saved),
                 flag_rule_negatives={k: len(v) for k, v in extra.negatives.items()},
                 flag_rule_references=len(extra.references))
        rows.append(r)
    return rows

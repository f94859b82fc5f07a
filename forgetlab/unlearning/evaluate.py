"""Evaluate one model (optionally behind ECO) on a forget split: TOFU forget/utility metrics and MUSE MIA.

:func:`evaluate_model` turns a model + :class:`EvalData` into an :class:`Evaluation` (per-item truth ratios and
MIA scores kept so forget quality and PrivLeak can be computed against the retain model's evaluation with
:func:`compare`). :func:`load_eval_data` reads a folder of TOFU-format JSONL (``forgetlab eco world`` writes
one; any data in TOFU's format works).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..eco.mc import mc_accuracy
from ..errors import BadInput
from . import metrics as M
from .lm import check_encodable, prompt_of
from .scoring import Corruption, choice_logprobs, generate_answers, score_answers
from .world import QA_FIELDS, check_forget_holdout, read_qa_jsonl

UTILITY_SETS = ("retain", "real_authors", "world_facts")


@dataclass
class EvalData:
    """Items in TOFU's format: the forget split, the holdout (MIA non-members) and the three utility sets;
    ``mc``: optional multiple-choice subjects (``question``, ``choices``, ``label``)."""

    forget: list[dict[str, Any]]
    holdout: list[dict[str, Any]]
    retain: list[dict[str, Any]]
    real_authors: list[dict[str, Any]]
    world_facts: list[dict[str, Any]]
    mc: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def validate(self) -> EvalData:
        check_forget_holdout(self.forget, self.holdout)
        for name in UTILITY_SETS:
            if not getattr(self, name):
                raise BadInput(name, 0, f"a non-empty {name} set")
        return self

    def check_encodable(self, tok) -> None:
        """Raise :class:`ForgetlabError` naming the set and line of the first text ``tok`` cannot encode."""
        sets = {n: getattr(self, n) for n in ("forget", "holdout", *UTILITY_SETS)}
        sets.update({f"mc_{k}": v for k, v in self.mc.items()})
        for name, rows in sets.items():
            for j, r in enumerate(rows, start=1):
                texts = [prompt_of(r["question"])]
                texts += r["choices"] if "choices" in r else [r["answer"], r["paraphrased_answer"],
                                                              *r["perturbed_answer"]]
                check_encodable(tok, texts, f"{name}.jsonl line {j}")


def load_eval_data(folder: str | Path, split: str = "forget10") -> EvalData:
    """Read ``<split>.jsonl``, ``holdout.jsonl``, ``retain_eval.jsonl``, ``real_authors.jsonl``,
    ``world_facts.jsonl`` and any ``mc_*.jsonl`` from ``folder``; errors name file, line and field."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BadInput("data", str(folder), "a folder of TOFU-format JSONL files (see `forgetlab eco world`)")
    get = lambda name: read_qa_jsonl(folder / name, QA_FIELDS)  # noqa: E731
    mc = {p.stem[3:]: read_qa_jsonl(p, ("question", "choices", "label")) for p in sorted(folder.glob("mc_*.jsonl"))}
    return EvalData(get(f"{split}.jsonl"), get("holdout.jsonl"), get("retain_eval.jsonl"),
                    get("real_authors.jsonl"), get("world_facts.jsonl"), mc).validate()


@dataclass
class Evaluation:
    """Aggregates (``summary``) plus what comparisons need: per-item forget truth ratios and MIA AUCs."""

    summary: dict[str, float]
    forget_tr: np.ndarray
    utility_parts: dict[str, float]
    mia_auc: dict[str, float]
    generations: list[str] = field(default_factory=list)


def _flags(flagger: Callable[[list[str]], np.ndarray] | None, rows: Sequence[dict[str, Any]],
           key: str = "question") -> np.ndarray | None:
    if flagger is None:
        return None
    return np.asarray(flagger([r[key] for r in rows]), dtype=bool)


def _corr(base: Corruption | None, flags: np.ndarray | None) -> Corruption | None:
    if base is None or flags is None:
        return None
    return base.with_flags(flags)


def qa_scores(model, tok, rows: Sequence[dict[str, Any]], corruption: Corruption | None = None,
              batch_size: int = 64) -> dict[str, np.ndarray]:
    """Average log-probs of answer / paraphrased / perturbed answers ``[N]``, ``[N]``, ``[N, n]`` for ``rows``."""
    n = len(rows)
    k = len(rows[0]["perturbed_answer"])
    prompts = [prompt_of(r["question"]) for r in rows]
    p_all = prompts * (2 + k)
    a_all = ([r["answer"] for r in rows] + [r["paraphrased_answer"] for r in rows]
             + [r["perturbed_answer"][j] for j in range(k) for r in rows])
    c = None
    if corruption is not None:
        c = corruption.with_flags(np.tile(corruption.flags, 2 + k))
    sc = score_answers(model, tok, p_all, a_all, batch_size=batch_size, corruption=c)
    avg = M.avg_logprob(sc.token_logprobs)
    return {"answer": avg[:n], "para": avg[n:2 * n], "pert": avg[2 * n:].reshape(k, n).T,
            "answer_tokens": sc.token_logprobs[:n]}


@dataclass
class _Scorer:
    """One model (optionally behind ECO) and how to score it: the pieces :func:`evaluate_model` reuses."""

    model: Any
    tok: Any
    eco: Corruption | None
    guard: Any
    flagger: Callable[[list[str]], np.ndarray] | None
    max_new_tokens: int
    batch_size: int
    generate: bool

    def flags(self, rows: Sequence[dict[str, Any]]) -> np.ndarray | None:
        return _flags(self.flagger, rows)

    def qa(self, rows: Sequence[dict[str, Any]], flags: np.ndarray | None) -> dict[str, np.ndarray]:
        return qa_scores(self.model, self.tok, rows, _corr(self.eco, flags), self.batch_size)

    def rouge(self, rows: Sequence[dict[str, Any]], flags: np.ndarray | None) -> tuple[float, list[str]]:
        """Mean ROUGE-L recall of greedy answers (through the guard when given), and the answers."""
        gens = generate_answers(self.model, self.tok, [prompt_of(r["question"]) for r in rows],
                                max_new_tokens=self.max_new_tokens, batch_size=self.batch_size, guard=self.guard,
                                flags=flags)
        return float(np.mean(M.rouge_l_recall(gens, [r["answer"] for r in rows]))), gens

    def mia_scores(self, rows: Sequence[dict[str, Any]], flags: np.ndarray | None) -> dict[str, np.ndarray]:
        """Member scores of every MIA attack on the answer given the question ``[N]`` each."""
        sc = score_answers(self.model, self.tok, [prompt_of(r["question"]) for r in rows],
                           [r["answer"] for r in rows], batch_size=self.batch_size,
                           corruption=_corr(self.eco, flags), with_dist=True)
        return {"loss": M.mia_loss(sc.token_logprobs),
                "zlib": M.mia_zlib(sc.token_logprobs, [r["answer"] for r in rows]),
                "min_k": M.mia_min_k(sc.token_logprobs),
                "min_k_pp": M.mia_min_k_pp([M.mink_pp_token_scores(lp, mu, v) for lp, mu, v
                                            in zip(sc.token_logprobs, sc.mu, sc.var, strict=True)])}

    def utility_parts(self, data: EvalData, say: Callable[[str], None]) -> dict[str, float]:
        """{prob, rouge, truth ratio} x {retain, real authors, world facts} (TOFU's model utility)."""
        parts: dict[str, float] = {}
        for name in UTILITY_SETS:
            say(f"utility: {name}")
            rows = getattr(data, name)
            flags = self.flags(rows)
            s = self.qa(rows, flags)
            if name == "retain":
                parts[f"{name}_prob"] = float(np.mean(np.exp(s["answer"])))
                tr = M.truth_ratio(s["para"], s["pert"])
            else:  # TOFU: options-normalized probability; truth ratio of the answer itself against the perturbed
                parts[f"{name}_prob"] = float(np.mean(M.prob_with_options(s["answer"], s["pert"])))
                tr = M.truth_ratio(s["answer"], s["pert"])
            parts[f"{name}_truth_ratio"] = M.tr_true_better(tr)
            if self.generate:
                parts[f"{name}_rouge"] = self.rouge(rows, flags)[0]
        return parts

    def mc_accuracy(self, rows: Sequence[dict[str, Any]]) -> float:
        lp = choice_logprobs(self.model, self.tok, [prompt_of(r["question"]) for r in rows],
                             [[c + "." for c in r["choices"]] for r in rows], batch_size=self.batch_size,
                             corruption=_corr(self.eco, self.flags(rows)))
        return mc_accuracy(lp, [r["label"] for r in rows])


def evaluate_model(model, tok, data: EvalData, *, eco: Corruption | None = None, guard=None,
                   flagger: Callable[[list[str]], np.ndarray] | None = None, max_new_tokens: int = 24,
                   batch_size: int = 64, generate: bool = True, utility: dict[str, float] | None = None,
                   progress: Callable[[str], None] | None = None) -> Evaluation:
    """All TOFU/MUSE numbers of one model on ``data``.

    ECO: ``eco`` gives the corruption and protocol for teacher-forced scores, ``flagger`` the classifier deciding
    which items are corrupted, ``guard`` the guarded model used for generation (prompt-only corruption).
    ``utility``: the utility parts of an earlier evaluation of the same model, reused instead of recomputed.
    """
    say = progress or (lambda _s: None)
    data.check_encodable(tok)
    sc = _Scorer(model, tok, eco, guard, flagger, max_new_tokens, batch_size, generate)
    out: dict[str, float] = {}
    say("forget set")  # truth ratio per item, probability, generation ROUGE
    f_flags = sc.flags(data.forget)
    fs = sc.qa(data.forget, f_flags)
    forget_tr = M.truth_ratio(fs["para"], fs["pert"])
    out["forget_truth_ratio"] = M.tr_closer_to_1(forget_tr)
    out["forget_prob"] = float(np.mean(np.exp(fs["answer"])))
    gens: list[str] = []
    if generate:
        out["forget_rouge"], gens = sc.rouge(data.forget, f_flags)
    say("membership inference")  # forget (members of the target) vs holdout (never seen)
    members = sc.mia_scores(data.forget, f_flags)
    nonmembers = sc.mia_scores(data.holdout, sc.flags(data.holdout))
    mia_auc = {k: M.auc(members[k], nonmembers[k]) for k in members}
    parts = dict(utility) if utility else sc.utility_parts(data, say)
    out["model_utility"] = M.model_utility(parts)
    out["retain_rouge"] = parts.get("retain_rouge", float("nan"))
    for subject, rows in data.mc.items():
        say(f"multiple choice: {subject}")
        out[f"mc_{subject}"] = sc.mc_accuracy(rows)
    return Evaluation(out, forget_tr, parts, mia_auc, gens)


def compare(ev: Evaluation, retain: Evaluation) -> dict[str, float]:
    """Forget quality (KS p-value of truth ratios) and PrivLeak (Min-K% AUC, MUSE) of ``ev`` vs the retain
    model's evaluation on the same data."""
    return {"forget_quality": M.forget_quality(ev.forget_tr, retain.forget_tr),
            "mia_auc": ev.mia_auc["min_k"],
            "privleak": M.privleak(ev.mia_auc["min_k"], retain.mia_auc["min_k"])}


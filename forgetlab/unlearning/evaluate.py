"""Evaluate one model (optionally behind ECO) on a forget split: TOFU forget/utility metrics and MUSE MIA.

:func:`evaluate_model` turns a model + :class:`EvalData` into an :class:`Evaluation` (per-item truth ratios and
MIA scores kept so forget quality and PrivLeak can be computed against the retain model's evaluation with
:func:`compare`). TOFU folders as published load into :class:`EvalData` with
:func:`forgetlab.unlearning.formats.tofu.load_tofu`; every part but the forget split is optional, and a metric
whose inputs are absent is left out (``Evaluation.missing`` says which and why). A guard scores through its own
flag rule, token mask and noise seeds (``guard=`` without ``eco=``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import metrics as M
from .lm import check_encodable, prompt_of
from .scoring import Corruption, generate_answers, score_answers
from .world import check_forget_holdout

UTILITY_SETS = ("retain", "real_authors", "world_facts")
OU_PREFIX = {"retain": "retain", "real_authors": "ra", "world_facts": "wf"}  # OU's metric-name prefixes
MIA_ATTACKS = ("mia_loss", "mia_zlib", "mia_min_k", "mia_min_k_plus_plus")  # OU's names; AUCs in the summary
PRIVLEAK_ATTACK = "mia_min_k"  # MUSE's and OU's PrivLeak statistic (Min-K%, k = 0.4)


@dataclass
class EvalData:
    """Items in TOFU's format: the forget split (required), the holdout (MIA non-members) and the three utility
    sets (each may be empty: the metrics that need it are then left out). Rows hold ``question`` and
    ``answer``, and where the source has them ``paraphrased_answer`` and ``perturbed_answer`` (a list)."""

    forget: list[dict[str, Any]]
    holdout: list[dict[str, Any]] = field(default_factory=list)
    retain: list[dict[str, Any]] = field(default_factory=list)
    real_authors: list[dict[str, Any]] = field(default_factory=list)
    world_facts: list[dict[str, Any]] = field(default_factory=list)

    def validate(self) -> EvalData:
        check_forget_holdout(self.forget, self.holdout)
        return self

    def check_encodable(self, tok) -> None:
        """Raise :class:`ForgetlabError` naming the set and line of the first text ``tok`` cannot encode."""
        for name in ("forget", "holdout", *UTILITY_SETS):
            for j, r in enumerate(getattr(self, name), start=1):
                texts = [prompt_of(r["question"]), r["answer"], *([r["paraphrased_answer"]] if has_para([r])
                                                                  else []), *r.get("perturbed_answer", [])]
                check_encodable(tok, texts, f"{name} line {j}")


def has_para(rows: Sequence[dict[str, Any]]) -> bool:
    """Every row has a paraphrased answer (the truth ratio of forget and retain sets needs one)."""
    return bool(rows) and all(isinstance(r.get("paraphrased_answer"), str) for r in rows)


def has_pert(rows: Sequence[dict[str, Any]]) -> bool:
    """Every row has perturbed (wrong) answers, all lists of one length."""
    return bool(rows) and all(isinstance(r.get("perturbed_answer"), list) and r["perturbed_answer"] for r in rows) \
        and len({len(r["perturbed_answer"]) for r in rows}) == 1


@dataclass
class Evaluation:
    """Aggregates (``summary``, OU's metric names) plus what comparisons need: per-item forget truth ratios and
    the MIA AUCs (attack name -> AUC, also in ``summary``)."""

    summary: dict[str, float]
    forget_tr: np.ndarray | None
    utility_parts: dict[str, float]
    mia_auc: dict[str, float]
    generations: list[str] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)  # metric -> why it was not computed


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
              batch_size: int = 64, guard=None, flags: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Average log-probs (EOS included, as OU) of answer / paraphrased / perturbed answers ``[N]``, ``[N]``,
    ``[N, n]`` for ``rows`` (``para`` / ``pert`` only when every row has them), and the answer's per-token argmax
    hits with the EOS dropped (``answer_hits``, ragged). ``guard`` + ``flags`` ``[N]``: scored through the guard."""
    n = len(rows)
    k = len(rows[0]["perturbed_answer"]) if has_pert(rows) else 0
    para = has_para(rows)
    parts = [[r["answer"] for r in rows]] + ([[r["paraphrased_answer"] for r in rows]] if para else [])
    parts += [[r["perturbed_answer"][j] for r in rows] for j in range(k)]
    prompts = [prompt_of(r["question"]) for r in rows]
    reps = len(parts)
    c = None if corruption is None else corruption.with_flags(np.tile(corruption.flags, reps))
    f = None if flags is None else np.tile(np.asarray(flags, dtype=bool), reps)
    sc = score_answers(model, tok, prompts * reps, [a for part in parts for a in part], batch_size=batch_size,
                       corruption=c, guard=guard, flags=f, eos=True)
    avg = M.avg_logprob(sc.token_logprobs)
    out = {"answer": avg[:n], "answer_hits": M.drop_last(sc.hits[:n])}
    if para:
        out["para"] = avg[n:2 * n]
    if k:
        out["pert"] = avg[(reps - k) * n:].reshape(k, n).T
    return out


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

    @property
    def scoring_guard(self):
        """The guard teacher-forced scores go through (its own mask and seeds), when no ``eco`` is given."""
        return self.guard if self.eco is None else None

    def qa(self, rows: Sequence[dict[str, Any]], flags: np.ndarray | None) -> dict[str, np.ndarray]:
        return qa_scores(self.model, self.tok, rows, _corr(self.eco, flags), self.batch_size,
                         guard=self.scoring_guard, flags=flags)

    def rouge(self, rows: Sequence[dict[str, Any]], flags: np.ndarray | None) -> tuple[float, list[str]]:
        """Mean ROUGE-L recall of greedy answers (through the guard when given), and the answers."""
        gens = generate_answers(self.model, self.tok, [prompt_of(r["question"]) for r in rows],
                                max_new_tokens=self.max_new_tokens, batch_size=self.batch_size, guard=self.guard,
                                flags=flags)
        return float(np.mean(M.rouge_l_recall(gens, [r["answer"] for r in rows]))), gens

    def mia_scores(self, rows: Sequence[dict[str, Any]], flags: np.ndarray | None) -> dict[str, np.ndarray]:
        """Member scores of every MIA attack on the answer given the question ``[N]`` each: LOSS and zlib over
        the answer and its EOS, Min-K and Min-K++ (k = 0.4) without the EOS, as OU."""
        sc = score_answers(self.model, self.tok, [prompt_of(r["question"]) for r in rows],
                           [r["answer"] for r in rows], batch_size=self.batch_size,
                           corruption=_corr(self.eco, flags), with_dist=True, guard=self.scoring_guard,
                           flags=flags, eos=True)
        lp, mu, var = M.drop_last(sc.token_logprobs), M.drop_last(sc.mu), M.drop_last(sc.var)
        return {"mia_loss": M.mia_loss(sc.token_logprobs),
                "mia_zlib": M.mia_zlib(sc.token_logprobs, [r["answer"] for r in rows]),
                "mia_min_k": M.mia_min_k(lp),
                "mia_min_k_plus_plus": M.mia_min_k_pp([M.mink_pp_token_scores(a, m, v)
                                                       for a, m, v in zip(lp, mu, var, strict=True)])}

    def utility_parts(self, data: EvalData, say: Callable[[str], None],
                      missing: dict[str, str] | None = None) -> dict[str, float]:
        """{prob, rouge, truth ratio} x {retain, real authors, world facts} (TOFU's model utility), over the
        sets present; ``missing`` collects the parts that could not be computed and why."""
        parts: dict[str, float] = {}
        missing = {} if missing is None else missing
        for name in UTILITY_SETS:
            rows = getattr(data, name)
            if not rows:
                missing[f"{OU_PREFIX[name]}_*"] = f"no {name} set in the data"
                continue
            say(f"utility: {name}")
            flags = self.flags(rows)
            s = self.qa(rows, flags)
            parts.update(_utility_set(name, s, missing))
            if self.generate:
                parts[f"{OU_PREFIX[name]}_Q_A_ROUGE"] = self.rouge(rows, flags)[0]
        return parts


def evaluate_model(model, tok, data: EvalData, *, eco: Corruption | None = None, guard=None,
                   flagger: Callable[[list[str]], np.ndarray] | None = None, max_new_tokens: int = 24,
                   batch_size: int = 64, generate: bool = True, utility: dict[str, float] | None = None,
                   progress: Callable[[str], None] | None = None) -> Evaluation:
    """All TOFU/MUSE numbers of one model on ``data``, under open-unlearning's metric names.

    ECO: ``eco`` gives the corruption and protocol for teacher-forced scores, ``flagger`` the classifier deciding
    which items are corrupted, ``guard`` the guarded model used for generation (prompt-only corruption).
    ``utility``: the utility parts of an earlier evaluation of the same model, reused instead of recomputed.
    """
    say = progress or (lambda _s: None)
    data.check_encodable(tok)
    sc = _Scorer(model, tok, eco, guard, flagger, max_new_tokens, batch_size, generate)
    missing: dict[str, str] = {}
    say("forget set")  # truth ratio per item, probability, memorization, generation ROUGE
    f_flags = sc.flags(data.forget)
    out, forget_tr = _forget_metrics(sc.qa(data.forget, f_flags), missing)
    gens: list[str] = []
    if generate:
        out["forget_Q_A_ROUGE"], gens = sc.rouge(data.forget, f_flags)
    mia_auc: dict[str, float] = {}
    if data.holdout:
        say("membership inference")  # forget (members of the target) vs holdout (never seen)
        members = sc.mia_scores(data.forget, f_flags)
        nonmembers = sc.mia_scores(data.holdout, sc.flags(data.holdout))
        mia_auc = {k: M.auc(members[k], nonmembers[k]) for k in MIA_ATTACKS}
        out.update(mia_auc)
    else:
        missing["mia_*"] = "no holdout set in the data"
    parts = dict(utility) if utility else sc.utility_parts(data, say, missing)
    if parts:
        out["model_utility"] = M.model_utility(parts)
    return Evaluation(out, forget_tr, parts, mia_auc, gens, missing)


def _forget_metrics(fs: dict[str, Any], missing: dict[str, str]) -> tuple[dict[str, float], np.ndarray | None]:
    """OU's forget-set numbers from the forget split's QA scores: probability, truth ratio (and its per-item
    values for forget quality), exact memorization and extraction strength."""
    out = {"forget_Q_A_Prob": float(np.mean(np.exp(fs["answer"]))),
           "exact_memorization": float(np.mean(M.exact_memorization(fs["answer_hits"]))),
           "extraction_strength": float(np.mean(M.extraction_strength(fs["answer_hits"])))}
    forget_tr = None
    if "para" in fs and "pert" in fs:
        forget_tr = M.truth_ratio(fs["para"], fs["pert"])
        out["forget_truth_ratio"] = M.tr_closer_to_1(forget_tr)
    else:
        missing["forget_truth_ratio"] = "the forget split has no paraphrased_answer / perturbed_answer"
    return out, forget_tr


def _utility_set(name: str, s: dict[str, np.ndarray], missing: dict[str, str]) -> dict[str, float]:
    """Probability and truth ratio of one utility set from its QA scores (what its rows allow), OU's names."""
    parts: dict[str, float] = {}
    pre = OU_PREFIX[name]
    if name == "retain":
        parts[f"{pre}_Q_A_Prob"] = float(np.mean(np.exp(s["answer"])))
        if "para" in s and "pert" in s:
            parts[f"{pre}_Truth_Ratio"] = M.tr_true_better(M.truth_ratio(s["para"], s["pert"]))
        else:
            missing[f"{pre}_Truth_Ratio"] = "the retain set has no paraphrased_answer / perturbed_answer"
    elif "pert" in s:  # TOFU: options-normalized probability; truth ratio of the answer itself vs the perturbed
        parts[f"{pre}_Q_A_Prob_normalised"] = float(np.mean(M.prob_with_options(s["answer"], s["pert"])))
        parts[f"{pre}_Truth_Ratio"] = M.tr_true_better(M.truth_ratio(s["answer"], s["pert"]))
    else:
        parts[f"{pre}_Q_A_Prob"] = float(np.mean(np.exp(s["answer"])))
        missing[f"{pre}_Truth_Ratio"] = f"the {name} set has no perturbed_answer"
    return parts


def compare(ev: Evaluation, retain: Evaluation) -> dict[str, float]:
    """Forget quality (KS p-value of truth ratios, OU ``ks_test``) and PrivLeak (Min-K% AUC, MUSE / OU
    ``privleak``) of ``ev`` vs the retain model's evaluation on the same data (NaN where the data lacked their
    inputs)."""
    nan = float("nan")
    fq = (M.forget_quality(ev.forget_tr, retain.forget_tr)
          if ev.forget_tr is not None and retain.forget_tr is not None else nan)
    if PRIVLEAK_ATTACK not in ev.mia_auc or PRIVLEAK_ATTACK not in retain.mia_auc:
        return {"forget_quality": fq, "privleak": nan}
    return {"forget_quality": fq, "privleak": M.privleak(ev.mia_auc[PRIVLEAK_ATTACK], retain.mia_auc[PRIVLEAK_ATTACK])}

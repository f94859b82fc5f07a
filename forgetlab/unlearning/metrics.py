"""Unlearning metrics as pure functions, exactly as open-unlearning (OU) and MUSE define them.

Inputs are answer-token log-probabilities ``log p(a_t | q, a_<t)``, one 1-D array per item (a ragged list), or
per-item average log-probabilities already reduced. Definitions follow OU (``src/evals/metrics/memorization.py``,
``privacy.py``, ``utility.py``, ``mia/``), which implements TOFU (Maini et al., 2024, Sec. 2.5) and MUSE (Shi et
al., 2024, Sec. 3). Token conventions (OU's collator appends EOS to every answer and labels it):

- probability, truth ratio, LOSS and zlib average over the answer tokens **and EOS** (OU ``evaluate_probability``);
- Min-K, Min-K++, exact memorization and extraction strength use the answer tokens **without the last label
  token** (the EOS; OU ``tokenwise_logprobs`` / ``tokenwise_vocab_logprobs`` drop it): :func:`drop_last`.

Metrics:

- probability: length-normalized ``P(a|q)^(1/|a|) = exp(mean_t log p)``; on the utility sets with options
  ("real authors", world facts) normalized over the options: ``P_true / (P_true + sum_i P_pert_i + 1e-10)``;
- truth ratio ``R = (prod_i P_pert_i)^(1/n) / (P_para + 1e-10)`` (each P length-normalized): forget sets aggregate
  it as ``mean(min(R, 1/(R + 1e-10)))`` (closer to 1 is better), utility sets as ``mean(max(0, 1 - R))``;
- forget quality: the p-value of the two-sided KS test between per-item R of the model and of the retain model
  on the forget set (OU ``ks_test``, ``scipy.stats.ks_2samp``);
- model utility: ``scipy.stats.hmean`` of {probability, ROUGE-L recall, truth ratio} over the three utility sets;
- exact memorization: fraction of answer tokens that are the argmax of their position; extraction strength:
  ``1 - k/n`` for the smallest ``k`` whose suffix of predictions all equal the labels (Carlini et al. 2021);
- MUSE's verbatim and knowledge memorization: ROUGE-L F1 of greedy continuations / answers;
- MIA: member scores (higher = "member"; OU's attack scores are their negatives), ROC AUC of forget (members)
  vs holdout (non-members) with ``sklearn.metrics.roc_auc_score`` (OU's convention: 1 when the forget set is much
  more likely than the holdout), and MUSE's PrivLeak
  ``((1 - AUC_model) - (1 - AUC_retain)) / (1 - AUC_retain + 1e-10) * 100`` (OU ``privleak``).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import BadInput

Ragged = Sequence[np.ndarray]
EPS = 1e-10  # OU's constant in the truth ratio's, the options-normalized probability's and PrivLeak's denominators


def drop_last(token_values: Ragged) -> list[np.ndarray]:
    """Each item's values without its last token ``[N][T_i - 1]``: OU drops the last label token (the EOS) for
    Min-K, Min-K++, exact memorization and extraction strength."""
    return [np.asarray(v)[:-1] for v in token_values]


def avg_logprob(token_logprobs: Ragged) -> np.ndarray:
    """Mean log-probability per item ``[N]`` (= minus open-unlearning's ``avg_loss``)."""
    out = np.empty(len(token_logprobs))
    for i, lp in enumerate(token_logprobs):
        lp = np.asarray(lp, dtype=float)
        if lp.size == 0:
            raise BadInput("token_logprobs", f"item {i} has no answer tokens", "at least one answer token")
        out[i] = lp.mean()
    return out


def normalized_prob(token_logprobs: Ragged) -> np.ndarray:
    """Length-normalized probability ``exp(mean_t log p)`` per item ``[N]`` (TOFU's "Prob.")."""
    return np.exp(avg_logprob(token_logprobs))


def prob_with_options(true_avg_lp: np.ndarray, pert_avg_lp: np.ndarray) -> np.ndarray:
    """``P_true / (P_true + sum_i P_pert_i)`` per item ``[N]`` from average log-probs ``[N]`` and ``[N, n]``.

    open-unlearning ``probability_w_options`` (used for TOFU's real-authors and world-facts sets).
    """
    t = np.exp(np.asarray(true_avg_lp, dtype=float))
    w = np.exp(np.asarray(pert_avg_lp, dtype=float)).sum(axis=-1)
    return t / (t + w + EPS)


def truth_ratio(para_avg_lp: np.ndarray, pert_avg_lp: np.ndarray) -> np.ndarray:
    """Per-item truth ratio ``R = exp(mean_i avg_lp_pert_i) / (exp(avg_lp_para) + 1e-10)`` ``[N]``.

    ``para_avg_lp``: ``[N]`` average log-prob of the paraphrased (true) answer; ``pert_avg_lp``: ``[N, n]`` of
    the perturbed (false) answers. The geometric mean of the perturbed answers' normalized probabilities over
    the paraphrased one's: open-unlearning ``truth_ratio`` (``wrong_prob / correct_prob``), TOFU Sec. 2.5.2.
    """
    para = np.asarray(para_avg_lp, dtype=float)
    pert = np.asarray(pert_avg_lp, dtype=float)
    if pert.ndim != 2 or pert.shape[0] != para.shape[0]:
        raise BadInput("pert_avg_lp", pert.shape, f"an array [N={para.shape[0]}, n_perturbed]")
    return np.exp(pert.mean(axis=1)) / (np.exp(para) + EPS)


def tr_closer_to_1(tr: np.ndarray) -> float:
    """Forget-set aggregate ``mean(min(R, 1/R))``: 1 when true and false answers are equally likely."""
    tr = np.asarray(tr, dtype=float)
    return float(np.mean(np.minimum(tr, 1.0 / (tr + EPS))))


def tr_true_better(tr: np.ndarray) -> float:
    """Utility-set aggregate ``mean(max(0, 1 - R))``: 1 when false answers are much less likely than true."""
    return float(np.mean(np.maximum(0.0, 1.0 - np.asarray(tr, dtype=float))))


def forget_quality(tr_model: np.ndarray, tr_retain: np.ndarray) -> float:
    """TOFU forget quality: two-sided KS-test p-value between per-item truth ratios ``[N]`` of the model and
    of the retain model on the forget set (``scipy.stats.ks_2samp``; exact for small samples)."""
    from scipy.stats import ks_2samp

    a, b = np.asarray(tr_model, dtype=float), np.asarray(tr_retain, dtype=float)
    if a.size == 0 or b.size == 0:
        raise BadInput("truth ratios", (a.size, b.size), "non-empty arrays for both models")
    return float(ks_2samp(a, b).pvalue)


def harmonic_mean(values: Sequence[float]) -> float:
    """``scipy.stats.hmean`` (0 if any value is 0, as OU's ``hm_aggregate``); negative or non-finite values and an
    empty list are an error."""
    from scipy.stats import hmean

    v = np.asarray(list(values), dtype=float)
    if v.size == 0 or np.any(v < 0) or np.any(~np.isfinite(v)):
        raise BadInput("values", v.tolist(), "a non-empty list of finite numbers >= 0")
    return float(hmean(v))


def model_utility(parts: Mapping[str, float]) -> float:
    """TOFU model utility: harmonic mean of the 9 numbers {prob, rouge, truth ratio} x {retain, real authors,
    world facts} (any set of non-negative parts; open-unlearning ``hm_aggregate``)."""
    return harmonic_mean(list(parts.values()))


_SCORER = None


def rouge_l_recall(predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """ROUGE-L recall of each prediction against its reference ``[N]`` (``rouge-score``, stemming on, as TOFU)."""
    global _SCORER
    from rouge_score import rouge_scorer

    if len(predictions) != len(references):
        raise BadInput("predictions", len(predictions), f"one per reference ({len(references)})")
    if _SCORER is None:
        _SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return np.array([_SCORER.score(r, p)["rougeL"].recall for p, r in zip(predictions, references, strict=True)])


def rouge_l_f1(predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """ROUGE-L F1 of each prediction against its reference ``[N]``: MUSE's VerbMem and KnowMem score (open-unlearning
    ``rougeL_f1``; ``rouge-score``, stemming on)."""
    global _SCORER
    from rouge_score import rouge_scorer

    if len(predictions) != len(references):
        raise BadInput("predictions", len(predictions), f"one per reference ({len(references)})")
    if _SCORER is None:
        _SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return np.array([_SCORER.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references, strict=True)])


# --- membership inference ----------------------------------------------------------------------------------

def mia_loss(token_logprobs: Ragged) -> np.ndarray:
    """LOSS attack (Yeom et al.): member score = mean log-prob (= -loss) ``[N]``."""
    return avg_logprob(token_logprobs)


def mia_zlib(token_logprobs: Ragged, texts: Sequence[str]) -> np.ndarray:
    """zlib attack (Carlini et al. 2021): member score = -loss / zlib-compressed length in bytes ``[N]``."""
    z = np.array([len(zlib.compress(t.encode("utf-8"))) for t in texts], dtype=float)
    return avg_logprob(token_logprobs) / z


def mia_min_k(token_logprobs: Ragged, k: float = 0.4) -> np.ndarray:
    """Min-K% Prob (Shi et al. 2024): member score = mean of the ``k`` fraction lowest token log-probs ``[N]``
    (at least one token; open-unlearning's default k = 0.4)."""
    out = np.empty(len(token_logprobs))
    for i, lp in enumerate(token_logprobs):
        s = np.sort(np.asarray(lp, dtype=float))
        out[i] = s[: max(1, int(len(s) * k))].mean()
    return out


def mink_pp_token_scores(token_logprobs: np.ndarray, mu: np.ndarray, var: np.ndarray) -> np.ndarray:
    """Min-K%++ per-token score ``(log p(x_t) - mu_t) / sigma_t`` with ``mu_t = E_z[log p(z)]`` and
    ``sigma_t^2 = Var_z[log p(z)]`` under the model's next-token distribution (Zhang et al. 2024; variance
    clamped at 1e-6 as open-unlearning)."""
    return (np.asarray(token_logprobs, float) - np.asarray(mu, float)) / np.sqrt(np.maximum(var, 1e-6))


def mia_min_k_pp(token_scores: Ragged, k: float = 0.4) -> np.ndarray:
    """Min-K%++: member score = mean of the ``k`` lowest per-token Min-K%++ scores ``[N]``."""
    return mia_min_k(token_scores, k)


def exact_memorization(hits: Ragged) -> np.ndarray:
    """Exact memorization per item ``[N]``: the fraction of answer tokens (EOS dropped) that are the argmax of
    their position (``hits``: per-token ``bool``, OU ``exact_memorization``)."""
    out = np.empty(len(hits))
    for i, h in enumerate(hits):
        h = np.asarray(h, dtype=bool)
        if h.size == 0:
            raise BadInput("hits", f"item {i} has no answer tokens", "at least one answer token")
        out[i] = h.mean()
    return out


def extraction_strength(hits: Ragged) -> np.ndarray:
    """Extraction strength per item ``[N]``: ``1 - k/n`` for the smallest ``k`` such that the greedy predictions
    of tokens ``k..n-1`` all equal the labels (``hits[k:]`` all true), ``k`` at most ``n - 1``: exactly OU's
    ``extraction_strength``, whose search stops at ``k = n - 1``, so an item whose last token is missed scores
    ``1/n`` like one whose last token alone is hit."""
    out = np.empty(len(hits))
    for i, h in enumerate(hits):
        h = np.asarray(h, dtype=bool)
        n = h.size
        if n == 0:
            raise BadInput("hits", f"item {i} has no answer tokens", "at least one answer token")
        k = min(n - int(np.argmin(h[::-1])), n - 1) if not h.all() else 0  # start of the all-hit suffix
        out[i] = 1.0 - k / n
    return out


def auc(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> float:
    """ROC AUC of members against non-members (``sklearn.metrics.roc_auc_score``): 1 when every member scores
    above every non-member, ties count half (OU ``mia_auc``: its loss-like scores with forget labelled 0)."""
    from sklearn.metrics import roc_auc_score

    a, b = np.asarray(member_scores, float), np.asarray(nonmember_scores, float)
    if a.size == 0 or b.size == 0:
        raise BadInput("scores", (a.size, b.size), "non-empty member and non-member scores")
    labels = np.r_[np.ones(a.size), np.zeros(b.size)]
    return float(roc_auc_score(labels, np.r_[a, b]))


def privleak(auc_model: float, auc_retain: float) -> float:
    """MUSE PrivLeak in percent, OU's ``privleak``: ``((1 - AUC) - (1 - AUC_retain)) / (1 - AUC_retain + 1e-10)
    * 100`` with AUCs in OU's convention (1 = forget set much more likely than holdout). 0 = like the retain
    model; large negative = the forget set still looks like members (under-unlearning); positive = over-unlearned.
    AUC 0.9 against a retain model's 0.6 gives -75."""
    for name, v in (("auc_model", auc_model), ("auc_retain", auc_retain)):
        if not 0.0 <= v <= 1.0:
            raise BadInput(name, v, "an AUC in [0, 1]")
    score, ref = 1.0 - auc_model, 1.0 - auc_retain
    return float((score - ref) / (ref + EPS) * 100.0)

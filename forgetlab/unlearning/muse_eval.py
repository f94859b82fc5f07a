"""MUSE's measurements of one model or guard (Shi et al. 2024, Sec. 3; open-unlearning's ``muse`` metrics).

- **VerbMem** (C1): greedy continuation (128 new tokens) of each ``verbmem`` prompt, ROUGE-L F1 against the true
  continuation ``gt``;
- **KnowMem** (C2 on ``forget_qa``, C4 utility on ``retain_qa``): greedy answer (32 new tokens, cut at a blank
  line or the next ``Question``) to ``Question: q\\nAnswer:`` after the few-shot ``*_icl`` examples, ROUGE-L F1
  against the answer;
- **PrivLeak** (C3): Min-K% (k = 0.4) membership scores of the ``privleak`` forget texts (members) vs the holdout
  texts, their ROC AUC (``mia_min_k``), and against the retain model's AUC
  ``((1 - AUC) - (1 - AUC_retain)) / (1 - AUC_retain) * 100`` (OU ``privleak``).

A guard is measured as deployed: prompts it flags are corrupted (prompt positions only) when it generates; for
PrivLeak a text is scored as the input it would be, so a flagged text has every token corrupted. Texts and
prompts longer than the model's context are cut to their last tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..eco.scoring import pack
from . import metrics as M
from .scoring import generate_answers

VERBMEM_NEW_TOKENS = 128  # open-unlearning forget_verbmem_ROUGE
KNOWMEM_NEW_TOKENS = 32  # open-unlearning forget_knowmem_ROUGE
KNOWMEM_STOPS = ("\n\n", "\nQuestion", "Question:")
MIN_K = 0.4  # open-unlearning mia_min_k
MAX_TEXT_TOKENS = 2048  # MUSE's max_length for texts


@dataclass
class MuseEvaluation:
    """One subject's MUSE numbers and the per-text Min-K% scores comparisons need."""

    summary: dict[str, float] = field(default_factory=dict)
    mia: dict[str, np.ndarray] = field(default_factory=dict)  # forget / holdout member scores
    missing: dict[str, str] = field(default_factory=dict)


def knowmem_prompt(question: str, shots: Sequence[dict[str, str]]) -> str:
    """``Question: q\\nAnswer: a\\n\\n`` per few-shot example, then the question to answer."""
    head = "".join(f"Question: {s['question']}\nAnswer: {s['answer']}\n\n" for s in shots)
    return f"{head}Question: {question}\nAnswer:"


def cut_at_stops(text: str, stops: Sequence[str] = KNOWMEM_STOPS) -> str:
    """``text`` up to the first stop string (greedy decoding past it changes nothing before it)."""
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    return (text[:min(hits)] if hits else text).strip()


def context_length(model, default: int = MAX_TEXT_TOKENS) -> int:
    """The model's maximum sequence length from its config, else ``default``."""
    config = getattr(model, "config", None)
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        val = getattr(config, attr, None)
        if isinstance(val, int) and val > 0:
            return val
    return default


def _fit(tok, prompts: Sequence[str], limit: int) -> list[str]:
    """Prompts cut to their last ``limit`` tokens (only those longer than that are touched)."""
    out = []
    for p in prompts:
        ids = tok(p, add_special_tokens=False).input_ids
        out.append(p if len(ids) <= limit else tok.decode(ids[-limit:], skip_special_tokens=True))
    return out


def _generate(subject, prompts: Sequence[str], new_tokens: int, batch_size: int) -> list[str]:
    limit = max(8, context_length(subject.model) - new_tokens - 2)
    prompts = _fit(subject.tokenizer, prompts, limit)
    flags = None if subject.guard is None else np.asarray(subject.guard.classify(prompts), dtype=bool)
    return generate_answers(subject.model, subject.tokenizer, prompts, max_new_tokens=new_tokens,
                            batch_size=batch_size, guard=subject.guard, flags=flags)


def text_token_logprobs(subject, texts: Sequence[str], batch_size: int = 8) -> list[np.ndarray]:
    """``log p(x_t | x_<t)`` of every token of each text after its first ``[N][T_i]`` (the text is the input;
    under a guard a flagged text is corrupted throughout)."""
    tok = subject.tokenizer
    limit = min(MAX_TEXT_TOKENS, context_length(subject.model))
    ids = [tok(t).input_ids[:limit] for t in texts]
    flags = (np.zeros(len(texts), bool) if subject.guard is None
             else np.asarray(subject.guard.classify(list(texts)), dtype=bool))
    out: list[np.ndarray] = [np.zeros(0)] * len(texts)
    order = sorted(range(len(texts)), key=lambda i: -len(ids[i]))
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        batch = pack([(ids[i][:1], ids[i][1:]) for i in idx], tok.pad_token_id)
        sc = subject.scorer.score_packed(batch, flags[idx], whole=True)
        for i, lp in zip(idx, sc.logprobs, strict=True):
            out[i] = lp
    return out


def evaluate_muse(subject, data, *, batch_size: int = 8, generate: bool = True,
                  progress: Callable[[str], None] | None = None) -> MuseEvaluation:
    """All MUSE numbers of ``subject`` (a :class:`~forgetlab.unlearning.suites.Subject`) on ``data`` (a
    :class:`~forgetlab.unlearning.formats.muse.MuseData`); subsets absent from the data are listed as missing."""
    say = progress or (lambda _s: None)
    ev = MuseEvaluation()
    if data.verbmem and generate:
        say("verbatim memorization")
        gens = _generate(subject, [r["prompt"] for r in data.verbmem], VERBMEM_NEW_TOKENS, batch_size)
        ev.summary["verbmem_f"] = float(np.mean(M.rouge_l_f1(gens, [r["gt"] for r in data.verbmem])))
    elif not data.verbmem:
        ev.missing["verbmem_f"] = "no verbmem/forget.json in the data"
    for key, name in (("forget_qa", "knowmem_f"), ("retain_qa", "knowmem_r")):
        rows = data.knowmem.get(key)
        if not rows:
            ev.missing[name] = f"no knowmem/{key}.json in the data"
        elif generate:
            say(f"knowledge memorization: {key}")
            shots = data.knowmem.get(key + "_icl", [])
            gens = _generate(subject, [knowmem_prompt(r["question"], shots) for r in rows], KNOWMEM_NEW_TOKENS,
                             batch_size)
            ev.summary[name] = float(np.mean(M.rouge_l_f1([cut_at_stops(g) for g in gens],
                                                           [r["answer"] for r in rows])))
    if data.privleak:
        say("privacy leakage")
        for part in ("forget", "holdout"):
            ev.mia[part] = M.mia_min_k(text_token_logprobs(subject, data.privleak[part], batch_size), MIN_K)
        ev.summary["mia_min_k"] = M.auc(ev.mia["forget"], ev.mia["holdout"])
    else:
        ev.missing["privleak"] = "no privleak/forget.json and holdout.json in the data"
    return ev


def compare_muse(ev: MuseEvaluation, retain: MuseEvaluation) -> dict[str, Any]:
    """PrivLeak of ``ev`` against the retain model's evaluation on the same texts (NaN without them)."""
    if "mia_min_k" not in ev.summary or "mia_min_k" not in retain.summary:
        return {"privleak": float("nan")}
    return {"privleak": M.privleak(ev.summary["mia_min_k"], retain.summary["mia_min_k"])}

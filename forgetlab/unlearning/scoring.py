"""Model-side measurements the pure metrics consume: answer-token log-probs, Min-K%++ statistics, greedy answers.

Works with any Hugging Face causal LM and tokenizer. A guard (``guard=``, an :class:`~forgetlab.eco.guard.EcoGuard`
or anything with its ``score_packed``) scores exactly as it serves: its own flags, every target's token mask and
noise seeds, prompt positions only. An optional :class:`Corruption` scores under ECO's embedding corruption, built
by the guard's own corrupter (``forgetlab.eco.corrupter``), with one of two masks:

- ``deployment``: only prompt tokens of flagged items are corrupted (exactly what a served guard does); the
  answer being scored is clean;
- ``paper``: in addition, the forget-entity tokens inside the scored answer are corrupted (the official ECO
  evaluation corrupts entity tokens wherever they appear in the scored text).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..eco.base_model import input_device
from ..eco.corrupter import Corrupter, score_continuations
from ..eco.scoring import encode_continuation, pack
from ..errors import BadInput, check_choice

PROTOCOLS = ("deployment", "paper")


@dataclass
class Corruption:
    """ECO's corruption of the flagged items of a list: the guard's :class:`~forgetlab.eco.corrupter.Corrupter`
    (its config, token classifier and tokenizer: the positions and noise a served guard uses), one flag per
    item, the protocol, and the entity finder the paper protocol uses inside answers."""

    corrupter: Corrupter
    flags: np.ndarray  # bool [N]
    protocol: str = "deployment"
    answer_entities: Any = None

    def __post_init__(self) -> None:
        check_choice("protocol", self.protocol, PROTOCOLS)
        self.flags = np.asarray(self.flags, dtype=bool)

    def with_flags(self, flags: np.ndarray) -> Corruption:
        """The same corruption for another list of items (``flags`` ``[N]``)."""
        return dataclasses.replace(self, flags=np.asarray(flags, dtype=bool))

    def subset(self, idx: Sequence[int]) -> Corruption:
        """The same corruption for the items ``idx`` of this one's."""
        return self.with_flags(self.flags[list(idx)])

    @property
    def answer_finder(self) -> Any:
        """The token classifier that finds entities inside answers (paper protocol only), or None."""
        if self.protocol != "paper":
            return None
        return self.answer_entities or self.corrupter.token_classifier


@dataclass
class AnswerScores:
    """Per-item answer-token log-probs (ragged, ``[N][T_i]``, the EOS last when scored with ``eos``), whether each
    token is its position's argmax (``hits``, same shape) and, when asked, Min-K%++ ``mu``/``var``."""

    token_logprobs: list[np.ndarray]
    mu: list[np.ndarray] = field(default_factory=list)
    var: list[np.ndarray] = field(default_factory=list)
    hits: list[np.ndarray] = field(default_factory=list)


def score_answers(model, tokenizer, prompts: Sequence[str], answers: Sequence[str], *, batch_size: int = 64,
                  corruption: Corruption | None = None, with_dist: bool = False, guard=None,
                  flags: np.ndarray | None = None, eos: bool = False) -> AnswerScores:
    """Teacher-forced ``log p(a_t | prompt, a_<t)`` of each answer's tokens, batched longest first.

    ``eos``: the tokenizer's EOS is scored after each answer (the last token of each row), as open-unlearning
    labels it for probabilities, truth ratios, LOSS and zlib; :func:`~forgetlab.unlearning.metrics.drop_last`
    removes it for the metrics that drop it. Multiple-choice scoring leaves it out (lm-evaluation-harness).

    ``with_dist`` also returns the mean and variance of ``log p(z)`` under the next-token distribution at each
    answer position (Min-K%++). ``corruption`` corrupts flagged prompts exactly as the guard does
    (:func:`~forgetlab.eco.corrupter.score_continuations`), and under the paper protocol the answer's entity
    tokens too; ``guard`` scores through the guard (``flags`` ``[N]``, or the guard classifies the prompts).
    """
    if len(prompts) != len(answers):
        raise BadInput("answers", len(answers), f"one answer per prompt ({len(prompts)})")
    if corruption is not None and len(corruption.flags) != len(prompts):
        raise BadInput("corruption.flags", len(corruption.flags), f"one flag per item ({len(prompts)})")
    tail = eos_text(tokenizer) if eos else ""
    if guard is not None and corruption is None:
        return _score_through_guard(guard, tokenizer, prompts, [a + tail for a in answers],
                                    guard_flags(guard, prompts, flags), batch_size, with_dist)
    sc = score_continuations(model, tokenizer, list(prompts), [" " + a + tail for a in answers],
                             corrupter=corruption.corrupter if corruption is not None else None,
                             flags=corruption.flags if corruption is not None else None,
                             answer_entities=corruption.answer_finder if corruption is not None else None,
                             batch_size=batch_size, with_dist=with_dist)
    return AnswerScores(sc.logprobs, sc.mu or [], sc.var or [], sc.hits or [])


def eos_text(tokenizer) -> str:
    """The EOS token as text, checked to encode to exactly the EOS id (special tokens are matched in text)."""
    eos, eid = tokenizer.eos_token, tokenizer.eos_token_id
    if eos is None or eid is None or tokenizer(eos, add_special_tokens=False).input_ids != [eid]:
        raise BadInput("tokenizer", getattr(tokenizer, "name_or_path", type(tokenizer).__name__),
                       "a tokenizer whose EOS token text encodes to its EOS id (answers are scored with EOS)")
    return eos


def _score_through_guard(guard, tokenizer, prompts: Sequence[str], answers: Sequence[str], flags: np.ndarray,
                         batch_size: int, with_dist: bool) -> AnswerScores:
    """:func:`score_answers` through ``guard.score_packed`` (every target's corruption), tokenized as
    :func:`~forgetlab.eco.corrupter.score_continuations` tokenizes, batched longest first."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]) - len(answers[i]))
    rows: dict[int, tuple] = {}
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        pairs = [encode_continuation(tokenizer, prompts[i], " " + answers[i]) for i in idx]
        sc = guard.score_packed(pack(pairs, pad), flags[idx], texts=[prompts[i] for i in idx], with_dist=with_dist)
        for r, i in enumerate(idx):
            rows[i] = (sc.logprobs[r], sc.hits[r], *((sc.mu[r], sc.var[r]) if with_dist else (None, None)))
    n = len(prompts)
    out = AnswerScores([rows[i][0] for i in range(n)], hits=[rows[i][1] for i in range(n)])
    if with_dist:
        out.mu, out.var = [rows[i][2] for i in range(n)], [rows[i][3] for i in range(n)]
    return out


def guard_flags(guard, prompts: Sequence[str], flags: np.ndarray | None) -> np.ndarray:
    """One flag per prompt: ``flags`` as given (checked), or the guard's classification of the prompts."""
    f = np.asarray(guard.classify(list(prompts)) if flags is None else flags, dtype=bool).reshape(-1)
    if len(f) != len(prompts):
        raise BadInput("flags", len(f), f"one flag per item ({len(prompts)})")
    return f


@torch.no_grad()
def generate_answers(model, tokenizer, prompts: Sequence[str], *, max_new_tokens: int = 32, batch_size: int = 64,
                     guard=None, flags: np.ndarray | None = None,
                     progress: Callable[[int], None] | None = None) -> list[str]:
    """Greedy continuations of ``prompts`` (left padded), decoded without special tokens and stripped.

    With ``guard`` (an :class:`~forgetlab.eco.guard.EcoGuard`), generation goes through the guard with the given
    ``flags`` (or the guard's own classification): flagged prompts are corrupted at prompt positions only.
    """
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    out: list[str] = []
    dev = input_device(model)
    try:
        for s in range(0, len(prompts), batch_size):
            chunk = list(prompts[s:s + batch_size])
            enc = tokenizer(chunk, return_tensors="pt", padding=True)
            kw = {"max_new_tokens": max_new_tokens, "do_sample": False,
                  "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id}
            if guard is not None:
                f = None if flags is None else np.asarray(flags[s:s + batch_size], dtype=bool)
                gen = guard.generate(input_ids=enc.input_ids, attention_mask=enc.attention_mask, flags=f, **kw)
            else:
                gen = model.generate(input_ids=enc.input_ids.to(dev), attention_mask=enc.attention_mask.to(dev),
                                     **kw)
            new = gen[:, enc.input_ids.shape[1]:]
            out += [tokenizer.decode(n, skip_special_tokens=True).strip() for n in new]
            if progress is not None:
                progress(len(chunk))
    finally:
        tokenizer.padding_side = side
    return out


@torch.no_grad()
def choice_logprobs(model, tokenizer, prompts: Sequence[str], choices: Sequence[Sequence[str]], *,
                    batch_size: int = 64, corruption: Corruption | None = None, guard=None,
                    flags: np.ndarray | None = None) -> np.ndarray:
    """Summed log-prob of each choice as the answer ``[N, C]`` (lm-evaluation-harness ``acc`` scoring); with a
    guard, each question's prompt is flagged once (``flags`` ``[N]`` or the guard's classification) and all its
    choices are scored under that flag."""
    C = len(choices[0])
    if any(len(c) != C for c in choices):
        raise BadInput("choices", [len(c) for c in choices][:5], "the same number of choices per question")
    flat_p = [p for p in prompts for _ in range(C)]
    flat_a = [a for cs in choices for a in cs]
    corr = None
    if corruption is not None:
        corr = corruption.with_flags(np.repeat(corruption.flags, C))
    rep = None
    if guard is not None and corruption is None:
        rep = np.repeat(guard_flags(guard, prompts, flags), C)
    sc = score_answers(model, tokenizer, flat_p, flat_a, batch_size=batch_size, corruption=corr, guard=guard,
                       flags=rep)
    return np.array([lp.sum() for lp in sc.token_logprobs]).reshape(len(prompts), C)

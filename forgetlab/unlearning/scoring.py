"""Model-side measurements the pure metrics consume: answer-token log-probs, Min-K%++ statistics, greedy answers.

Works with any Hugging Face causal LM and tokenizer. A guard (``guard=``, an :class:`~forgetlab.eco.guard.EcoGuard`
or anything with its ``score_packed``) scores exactly as it serves: its own flags, token mask and noise seeds,
prompt positions only. An optional :class:`Corruption` scores or generates under ECO's embedding corruption
(``forgetlab.eco.hooks.corrupt_embeddings``) with one of two masks:

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
from ..eco.classify.token import token_mask_from_spans
from ..eco.scoring import Corrupt, continuation_logprobs, pack
from ..errors import BadInput, check_choice
from .lm import encode_pair

PROTOCOLS = ("deployment", "paper")


@dataclass
class Corruption:
    """ECO corruption of flagged items: name/strength/k/seed of the corruption, one flag per item, the protocol,
    and optional token classifiers (``prompt_entities``: corrupt only entity tokens of the prompt;
    ``answer_entities``: the entity finder used inside answers by the paper protocol)."""

    name: str
    strength: float
    flags: np.ndarray  # bool [N]
    k: int = 0
    seed: int = 0
    protocol: str = "deployment"
    prompt_entities: Any = None
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


def _span_mask(tokenizer, text: str, spans: list[tuple[int, int]], n: int, add_special: bool) -> list[bool]:
    """Token mask over the ``n`` ids of ``text`` covering character ``spans`` (False where ids do not align)."""
    enc = tokenizer(text, add_special_tokens=add_special, return_offsets_mapping=True)
    if len(enc["input_ids"]) != n:
        return [False] * n
    offs = [(a, b) if b > a else (0, 0) for a, b in enc["offset_mapping"]]
    return token_mask_from_spans(offs, spans)


def corruption_mask(tokenizer, prompts: Sequence[str], answers: Sequence[str],
                    seqs: Sequence[tuple[list[int], int]], T: int, c: Corruption) -> torch.Tensor:
    """Positions to corrupt ``bool [B, T]`` for right-padded ``seqs`` (ids, n_prompt) under ``c.protocol``."""
    m = torch.zeros(len(seqs), T, dtype=torch.bool)
    for b, ((ids, n_p), prompt, answer, flag) in enumerate(zip(seqs, prompts, answers, c.flags, strict=True)):
        if not flag:
            continue
        if c.prompt_entities is None:
            m[b, :n_p] = True
        else:
            pm = _span_mask(tokenizer, prompt, c.prompt_entities.char_spans(prompt), n_p, True)
            m[b, :n_p] = torch.tensor(pm, dtype=torch.bool) if any(pm) else True
        if c.protocol == "paper":
            finder = c.answer_entities or c.prompt_entities
            if finder is not None:
                n_a = len(ids) - n_p - (1 if ids[-1] == tokenizer.eos_token_id else 0)
                am = _span_mask(tokenizer, " " + answer, finder.entity_spans(" " + answer), n_a, False)
                m[b, n_p:n_p + n_a] = torch.tensor(am, dtype=torch.bool)
    return m


@dataclass
class AnswerScores:
    """Per-item answer-token log-probs (ragged, ``[N][T_i]``) and, when asked, Min-K%++ ``mu``/``var``."""

    token_logprobs: list[np.ndarray]
    mu: list[np.ndarray] = field(default_factory=list)
    var: list[np.ndarray] = field(default_factory=list)


def score_answers(model, tokenizer, prompts: Sequence[str], answers: Sequence[str], *, batch_size: int = 64,
                  corruption: Corruption | None = None, with_dist: bool = False, guard=None,
                  flags: np.ndarray | None = None) -> AnswerScores:
    """Teacher-forced ``log p(a_t | prompt, a_<t)`` of each answer's tokens (eos excluded), batched longest first.

    ``with_dist`` also returns the mean and variance of ``log p(z)`` under the next-token distribution at each
    answer position (Min-K%++). ``corruption`` applies ECO's hook with the protocol's mask; ``guard`` scores
    through the guard (``flags`` ``[N]``, or the guard classifies the prompts).
    """
    if len(prompts) != len(answers):
        raise BadInput("answers", len(answers), f"one answer per prompt ({len(prompts)})")
    if corruption is not None and len(corruption.flags) != len(prompts):
        raise BadInput("corruption.flags", len(corruption.flags), f"one flag per item ({len(prompts)})")
    if guard is not None and corruption is None:
        flags = guard_flags(guard, prompts, flags)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]) - len(answers[i]))
    results: dict[int, tuple] = {}
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        seqs = [encode_pair(tokenizer, prompts[i], answers[i], eos=False) for i in idx]
        batch = pack([(ids[:n_p], ids[n_p:]) for ids, n_p in seqs], pad)
        if guard is not None and corruption is None:
            sc = guard.score_packed(batch, flags[idx], texts=[prompts[i] for i in idx], with_dist=with_dist)
        else:
            sc = continuation_logprobs(model, batch, _batch_corrupt(tokenizer, prompts, answers, seqs, idx,
                                                                   batch, corruption), with_dist)
        for r, i in enumerate(idx):
            results[i] = (sc.logprobs[r], sc.mu[r], sc.var[r]) if with_dist else (sc.logprobs[r],)
    out = AnswerScores([])
    for i in range(len(prompts)):
        out.token_logprobs.append(results[i][0])
        if with_dist:
            out.mu.append(results[i][1])
            out.var.append(results[i][2])
    return out


def guard_flags(guard, prompts: Sequence[str], flags: np.ndarray | None) -> np.ndarray:
    """One flag per prompt: ``flags`` as given (checked), or the guard's classification of the prompts."""
    f = np.asarray(guard.classify(list(prompts)) if flags is None else flags, dtype=bool).reshape(-1)
    if len(f) != len(prompts):
        raise BadInput("flags", len(f), f"one flag per item ({len(prompts)})")
    return f


def _batch_corrupt(tokenizer, prompts, answers, seqs, idx, batch, corruption: Corruption | None) -> Corrupt | None:
    """The corruption of one batch of :func:`score_answers` under ``corruption``'s protocol, or None."""
    c = corruption.subset(idx) if corruption is not None else None
    if c is None or not c.flags.any():
        return None
    mask = corruption_mask(tokenizer, [prompts[i] for i in idx], [answers[i] for i in idx], seqs,
                           batch.ids.shape[1], c)
    return Corrupt(mask, c.name, c.strength, c.k, generator=torch.Generator().manual_seed(int(c.seed)))


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

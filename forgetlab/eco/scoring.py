"""Teacher-forced log-probabilities of continuation tokens, with the prompt part optionally corrupted.

The one computation behind a guard's answer scores, the multiple-choice metric that fits a corruption's strength,
and the unlearning bench's TOFU/MUSE scores: encode (prompt, continuation) pairs (:func:`encode_continuation`,
the one split of a scored text into the two), pack the ids into a right-padded batch,
run the model once (under :func:`~forgetlab.eco.hooks.corrupt_embeddings` when a corruption is given) and read
``log p(c_t | prompt, c_<t)`` for every continuation token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import BadInput
from .hooks import corrupt_embeddings


@dataclass
class Packed:
    """A right-padded batch: ``ids``/``attention`` ``[B, T]`` and each row's continuation ``[start, end)``."""

    ids: torch.Tensor
    attention: torch.Tensor
    starts: list[int]  # first continuation position of each row (= number of prompt tokens)
    ends: list[int]  # one past the last real token of each row

    def prompt_mask(self) -> torch.Tensor:
        """``bool [B, T]``: the prompt positions of every row."""
        pos = torch.arange(self.ids.shape[1])[None]
        return pos < torch.tensor(self.starts)[:, None]


def encode_continuation(tokenizer: Any, prompt: str, continuation: str) -> tuple[list[int], list[int]]:
    """The prompt's ids (with the tokenizer's special tokens) and the continuation's as they read after it: the
    tail of encoding ``prompt + continuation``, as lm-evaluation-harness and open-unlearning split a scored text.

    Encoded alone, a continuation gets what the tokenizer puts at the start of a text: a SentencePiece tokenizer
    with a prepended "▁" (Llama-2, Mistral) reads " A" as "▁", "▁A" where after the prompt it is "▁A", so every
    answer carried the log-prob of a token the model never writes there. Where the joint encoding does not start
    with the prompt's (a token across the boundary, a prompt ending in a space), the continuation is encoded
    after a line break, which is then dropped (:func:`_encode_after_break`).
    """
    ctx = list(tokenizer(prompt).input_ids)
    if not ctx:
        raise BadInput("prompt", prompt, "a prompt of at least one token (this tokenizer adds no "
                       "beginning-of-sequence token, so an empty prompt leaves nothing to predict from)")
    whole = list(tokenizer(prompt + continuation).input_ids)
    if len(whole) > len(ctx) and whole[:len(ctx)] == ctx:
        return ctx, whole[len(ctx):]
    return ctx, _encode_after_break(tokenizer, continuation)


def _encode_after_break(tokenizer: Any, continuation: str) -> list[int]:
    """The continuation's ids as they read after a line break (no text-start marker), else alone."""
    brk = list(tokenizer("\n", add_special_tokens=False).input_ids)
    ids = list(tokenizer("\n" + continuation, add_special_tokens=False).input_ids)
    if brk and len(ids) >= len(brk) and ids[:len(brk)] == brk:
        return ids[len(brk):]
    return list(tokenizer(continuation, add_special_tokens=False).input_ids)


def pack(pairs: Sequence[tuple[Sequence[int], Sequence[int]]], pad_id: int) -> Packed:
    """Right-pad ``(prompt ids, continuation ids)`` pairs into one batch."""
    T = max(len(p) + len(c) for p, c in pairs)
    ids = torch.full((len(pairs), T), pad_id, dtype=torch.long)
    attn = torch.zeros_like(ids)
    for r, (p, c) in enumerate(pairs):
        n = len(p) + len(c)
        ids[r, :n] = torch.tensor([*p, *c], dtype=torch.long)
        attn[r, :n] = 1
    return Packed(ids, attn, [len(p) for p, _ in pairs], [len(p) + len(c) for p, c in pairs])


@dataclass
class Corrupt:
    """How to corrupt one batch: the positions (``mask`` ``[B, T]``), the corruption and its knobs, and its
    randomness: one ``generator`` for the batch, or ``row_seeds`` (one per row, batch-independent)."""

    mask: torch.Tensor
    name: str
    strength: float = 0.0
    k: int = 0
    generator: torch.Generator | None = None
    row_seeds: list[int] | None = None


@dataclass
class TokenScores:
    """Per-row continuation scores (ragged ``[B][T_b]``): log-probs, and with ``with_dist`` the mean and
    variance of ``log p(z)`` under each position's next-token distribution (for Min-K%++); with ``top_k`` the
    ``k`` most likely tokens at each position, ids and log-probs ``[B][T_b, k]`` (for an API's top_logprobs);
    ``greedy`` ``[B]``: whether every continuation token is the argmax of its position (lm-evaluation-harness
    ``is_greedy``); ``hits`` ``[B][T_b]``: whether each continuation token is the argmax of its position (exact
    memorization, extraction strength)."""

    logprobs: list[np.ndarray]
    mu: list[np.ndarray] | None = None
    var: list[np.ndarray] | None = None
    top_ids: list[np.ndarray] | None = None
    top_logprobs: list[np.ndarray] | None = None
    greedy: list[bool] | None = None
    hits: list[np.ndarray] | None = None


@torch.no_grad()
def continuation_logprobs(model, batch: Packed, corrupt: Corrupt | None = None,
                          with_dist: bool = False, top_k: int = 0) -> TokenScores:
    """``log p(c_t | prompt, c_<t)`` of each row's continuation tokens, one forward pass for the batch."""
    dev = next(model.parameters()).device
    kw = {"input_ids": batch.ids.to(dev), "attention_mask": batch.attention.to(dev)}
    if corrupt is not None and bool(corrupt.mask.any()):
        with corrupt_embeddings(model, corrupt.mask.to(dev), corrupt.name, corrupt.strength, corrupt.k,
                                corrupt.generator, row_seeds=corrupt.row_seeds):
            logits = model(**kw).logits
    else:
        logits = model(**kw).logits
    logp = torch.log_softmax(logits.float(), -1).cpu()
    out = TokenScores([], [] if with_dist else None, [] if with_dist else None, [] if top_k else None,
                      [] if top_k else None, [], [])
    for r, (a, b) in enumerate(zip(batch.starts, batch.ends, strict=True)):
        rows = logp[r, a - 1:b - 1]  # [T_r, V]: the distribution predicting each continuation token
        tgt = batch.ids[r, a:b]
        out.logprobs.append(rows[torch.arange(b - a), tgt].numpy())
        if top_k:
            top = rows.topk(min(top_k, rows.shape[-1]), dim=-1)
            out.top_ids.append(top.indices.numpy())
            out.top_logprobs.append(top.values.numpy())
        hit = rows.argmax(-1) == tgt
        out.hits.append(hit.numpy())
        out.greedy.append(bool(hit.all()))
        if with_dist:
            p = rows.exp()
            mu = (p * rows).sum(-1)
            out.mu.append(mu.numpy())
            out.var.append(((p * rows.square()).sum(-1) - mu.square()).numpy())
    return out

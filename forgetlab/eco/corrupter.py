"""Which positions of a flagged prompt ECO corrupts, and with which noise: one code path for serving, fitting
and scoring.

:class:`GuardConfig` says what a guard does to a flagged prompt; :class:`Corrupter` turns it into the boolean
mask ``[B, T]`` of positions to corrupt and one noise seed per row. The served guard (``EcoGuard.generate``,
``forward``, ``prompt_embeddings``), the strength fit (``forgetlab.eco.mc``, ``forgetlab.eco.select``) and the
unlearning bench all build masks and seeds here, from prompts tokenized the same way (with the tokenizer's
special tokens), so the corruption fitted offline is exactly the one that serves.

Positions (``GuardConfig.positions``), counted over the prompt's tokens *including* special tokens such as BOS:

========================  =====================================================================================
``all_but_last`` (default)  every prompt token but the last: the ECO reference's choice; the last prompt token's
                            state produces the first answer token, and left clean the answer stays well formed
``all``                     every prompt token (guards saved before this option existed, format 1-2)
========================  =====================================================================================

With a token classifier and ``entity_tokens``, only the forget entity's tokens are corrupted (a prompt where no
entity is found falls back to the policy above when the classifier's ``fallback`` is ``"all"``). Each row's noise
is seeded by SHA-256 of (the guard's seed, the row's token ids at corrupted prompt positions): a prompt gets the
same corruption alone or in any batch, with any padding, and whatever answer follows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from ..errors import BadInput, check_choice
from .classify.token import token_mask_from_spans
from .hooks import token_seed
from .scoring import Corrupt, Packed, TokenScores, continuation_logprobs, encode_continuation, pack

POSITIONS = ("all_but_last", "all")


@dataclass(frozen=True)
class GuardConfig:
    """What a guard does to a flagged prompt: the corruption, its fitted strength and k, the seed of its noise,
    and which prompt positions it corrupts (see the module table).

    With a token classifier: ``flag_entities`` also flags every prompt that mentions a forget entity (the flag
    rule is classifier OR entity match); ``entity_tokens`` corrupts only the spans the token classifier returns
    for a flagged prompt (its ``char_spans``: with ``fallback="all"`` the whole prompt when no entity is found),
    the whole prompt when False."""

    corruption: str
    strength: float = 0.0
    k: int = 0
    seed: int = 0
    flag_entities: bool = False
    entity_tokens: bool = True
    positions: str = "all_but_last"

    def __post_init__(self) -> None:
        for name in ("flag_entities", "entity_tokens"):
            if not isinstance(getattr(self, name), bool):
                raise BadInput(name, getattr(self, name), "true or false")
        check_choice("positions", self.positions, POSITIONS)


@dataclass
class Corrupter:
    """A guard's corruption without its model or classifier: masks and seeds for batches of prompts."""

    tokenizer: Any
    config: GuardConfig
    token_classifier: Any = None

    def at(self, strength: float | None = None, k: int | None = None) -> Corrupter:
        """The same corrupter with another strength or k (what a strength fit evaluates)."""
        changes = {n: v for n, v in (("strength", strength), ("k", k)) if v is not None}
        return replace(self, config=replace(self.config, **changes))

    def _entity_mask(self, text: str, row_ids: list[int]) -> list[bool] | None:
        """Entity-token mask over ``row_ids`` from the token classifier; None: no entity mode, or the text's
        tokens cannot be aligned with these ids (then the whole-prompt policy applies)."""
        if self.token_classifier is None or not self.config.entity_tokens:
            return None
        spans = self.token_classifier.entity_spans(text)
        if not spans:  # no entity named: the whole prompt (fallback "all") or nothing
            return None if self.token_classifier.fallback == "all" else [False] * len(row_ids)
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = enc["input_ids"]
        n = len(row_ids)
        # the prompt ids may carry special tokens (BOS) in front: align the text's tokens at the end
        if n < len(ids) or row_ids[n - len(ids):] != ids:
            return None
        return [False] * (n - len(ids)) + token_mask_from_spans(enc["offset_mapping"], spans)

    def prompt_positions(self, row_ids: list[int], text: str | None = None) -> list[bool]:
        """Which of one flagged prompt's tokens (special tokens included) are corrupted."""
        mask = None
        if self.token_classifier is not None and self.config.entity_tokens:
            if text is None:
                text = self.tokenizer.decode(row_ids, skip_special_tokens=True)
            mask = self._entity_mask(text, row_ids)
        if mask is not None:
            return mask
        keep_last = self.config.positions == "all_but_last" and len(row_ids) > 1
        return [True] * (len(row_ids) - 1) + [not keep_last] if row_ids else []

    def mask(self, ids: torch.Tensor, prompt_mask: torch.Tensor, flags: Sequence[bool],
             texts: Sequence[str | None] | None = None) -> torch.Tensor:
        """Positions to corrupt ``bool [B, T]``: the chosen prompt positions of flagged rows.

        ``prompt_mask`` ``[B, T]`` marks each row's prompt tokens (padding and any answer excluded; left or right
        padding alike); ``texts`` are the prompts' texts when known (else decoded from the ids).
        """
        ids, prompt_mask = ids.cpu(), prompt_mask.bool().cpu()
        out = torch.zeros_like(prompt_mask)
        flags = np.asarray(flags, dtype=bool).reshape(-1)
        for b in np.flatnonzero(flags):
            pos = prompt_mask[b].nonzero().squeeze(-1)
            if pos.numel() == 0:
                continue
            text = texts[b] if texts is not None else None
            out[b, pos] = torch.tensor(self.prompt_positions(ids[b, pos].tolist(), text), dtype=torch.bool)
        return out

    def seeds(self, ids: torch.Tensor, mask: torch.Tensor, prompt_mask: torch.Tensor | None = None) -> list[int]:
        """One noise seed per row from the token ids at its corrupted prompt positions (``prompt_mask`` limits
        them to the prompt when ``mask`` also covers answer tokens)."""
        sel = mask.cpu() if prompt_mask is None else mask.cpu() & prompt_mask.bool().cpu()
        return [token_seed(self.config.seed, row[m]) for row, m in zip(ids.cpu(), sel, strict=True)]

    def corrupt(self, ids: torch.Tensor, mask: torch.Tensor, prompt_mask: torch.Tensor | None = None) -> Corrupt:
        """The :class:`~forgetlab.eco.scoring.Corrupt` of a batch: this config's corruption at ``mask``."""
        c = self.config
        return Corrupt(mask, c.corruption, c.strength, c.k, row_seeds=self.seeds(ids, mask, prompt_mask))


def _answer_entity_mask(tokenizer: Any, finder: Any, prompt: str, text: str, ids: list[int]) -> list[bool]:
    """Which of a continuation's tokens ``ids`` (split from its prompt by
    :func:`~forgetlab.eco.scoring.encode_continuation`) name an entity ``finder`` knows: their character spans
    read from the same encoding, after the prompt or alone (False everywhere where neither gives these ids)."""
    n = len(ids)
    for before, specials in ((prompt, True), ("", False)):
        enc = tokenizer(before + text, add_special_tokens=specials, return_offsets_mapping=True)
        tail = len(enc["input_ids"]) - n
        if tail >= 0 and list(enc["input_ids"][tail:]) == ids:
            offsets = [(a - len(before), b - len(before)) for a, b in enc["offset_mapping"][tail:]]
            return token_mask_from_spans(offsets, finder.entity_spans(text))
    return [False] * n


def continuation_mask(corrupter: Corrupter, batch: Packed, flags: Sequence[bool], prompts: Sequence[str],
                      continuations: Sequence[str], answer_entities: Any = None) -> torch.Tensor:
    """Positions to corrupt ``bool [B, T]`` in a packed (prompt, continuation) batch: the guard's prompt positions
    of flagged rows, and with ``answer_entities`` also the continuation tokens naming an entity."""
    flags = np.asarray(flags, dtype=bool)
    mask = corrupter.mask(batch.ids, batch.prompt_mask(), flags, prompts)
    if answer_entities is not None:
        for b in np.flatnonzero(flags):
            a, e = batch.starts[b], batch.ends[b]
            mask[b, a:e] = torch.tensor(_answer_entity_mask(corrupter.tokenizer, answer_entities, prompts[b],
                                                            continuations[b], batch.ids[b, a:e].tolist()),
                                        dtype=torch.bool)
    return mask


def _batch_corrupt(corrupter: Corrupter, batch: Packed, flags: np.ndarray, prompts: Sequence[str],
                   continuations: Sequence[str], answer_entities: Any) -> Corrupt | None:
    """The corruption of one packed batch, noise seeded by each row's corrupted prompt tokens only."""
    if not flags.any():
        return None
    mask = continuation_mask(corrupter, batch, flags, prompts, continuations, answer_entities)
    return corrupter.corrupt(batch.ids, mask, batch.prompt_mask())


def score_continuations(model: Any, tokenizer: Any, prompts: Sequence[str], continuations: Sequence[str], *,
                        corrupter: Corrupter | None = None, flags: Sequence[bool] | None = None,
                        answer_entities: Any = None, batch_size: int = 64, with_dist: bool = False) -> TokenScores:
    """Log-probs of each continuation's tokens given its prompt, flagged prompts corrupted as a guard does.

    Prompts are tokenized with the tokenizer's special tokens and continuations as they read after them
    (:func:`~forgetlab.eco.scoring.encode_continuation`), exactly as the guard scores; rows are batched longest
    first (a row's result does not depend on its batch).
    ``answer_entities`` (a token classifier) also corrupts the continuation tokens that name a forget entity
    (the official ECO evaluation protocol; a served guard never sees the answer). Returns ragged ``[N][T_i]``.
    """
    n = len(prompts)
    flags = np.zeros(n, dtype=bool) if flags is None or corrupter is None else np.asarray(flags, dtype=bool)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    order = sorted(range(n), key=lambda i: -len(prompts[i]) - len(continuations[i]))
    rows: dict[int, tuple] = {}
    for s in range(0, n, batch_size):
        idx = order[s:s + batch_size]
        pairs = [encode_continuation(tokenizer, prompts[i], continuations[i]) for i in idx]
        batch = pack(pairs, pad)
        corrupt = (_batch_corrupt(corrupter, batch, flags[idx], [prompts[i] for i in idx],
                                  [continuations[i] for i in idx], answer_entities)
                   if corrupter is not None else None)
        sc = continuation_logprobs(model, batch, corrupt, with_dist)
        for r, i in enumerate(idx):
            rows[i] = (sc.logprobs[r], sc.hits[r], sc.mu[r], sc.var[r]) if with_dist else (sc.logprobs[r], sc.hits[r])
    out = TokenScores([rows[i][0] for i in range(n)], hits=[rows[i][1] for i in range(n)])
    if with_dist:
        out.mu, out.var = [rows[i][2] for i in range(n)], [rows[i][3] for i in range(n)]
    return out

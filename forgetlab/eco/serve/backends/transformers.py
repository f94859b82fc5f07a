"""The ``transformers`` backend: the guard's own HF model, one left-padded ``generate`` call per batch.

Per-row sampling settings (temperature, top-p, seed), per-row ``max_tokens`` and stop strings are handled by a
logits processor and a stopping criterion of our own, so requests with different settings share a batch. It
runs in the batcher's worker thread, never on the event loop.

Library pieces: nucleus filtering is transformers' ``TopPLogitsWarper``, applied row by row (each request has
its own top-p). Stop strings are matched on the decoded text by :class:`TextTracker`, not by transformers'
``StopStringCriteria``: that criterion takes one set of stop strings for the whole batch (our rows each have
their own), and it says *that* a row stopped, not *where* its text must be cut or which text may already be
streamed while a stop string is still half-written; the tracker needs both, so the library piece would add a
second check, not replace this one.

Log-probabilities (``logprobs``, ``echo``) come from one teacher-forced pass of the guard over prompt +
generated tokens after generation (:meth:`~forgetlab.eco.guard.EcoGuard.score_sequences`: the prompt corrupted
exactly as in generation, the generated tokens never), so they are the same numbers the guard's own scoring
gives; a choice that asked for them gets its ``Done`` only after that pass.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import LogitsProcessor, StoppingCriteria, TopPLogitsWarper

from ...guard import GuardLike
from ..answers import CONTEXT_SCAN, decode_joined, ordinary_tail
from ..types import Delta, Done, GenRequest, Logprobs
from . import classify_batch

# ---------------------------------------------------------------- per-row text tracking


def _held_suffix(text: str, stops: Sequence[str]) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of a stop string (kept back)."""
    best = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:k]):
                best = k
                break
    return best


CLEANUP_TAILS = (" .", " ?", " !", " ,", " ' ", " n't", " 'm", " 's", " 've", " 're")
"""What a tokenizer's clean-up of tokenization spaces (transformers' ``clean_up_tokenization``) rewrites, the
space dropped: text that ends in the start of one may still change with the next token."""

SETTLE_AFTER = 16
"""Generated tokens a row decodes again at each step before their text is settled (never decoded again): each
step then costs a window of tokens, not the whole continuation, so a row's tracking is linear in its length."""


@dataclass
class _Row:
    """One choice being generated: its tokens so far, how much text was already sent, and the settled text of
    its first ``n_settled`` tokens (:class:`TextTracker`)."""

    req: GenRequest
    index: int
    tokens: list[int] = field(default_factory=list)
    sent: int = 0
    done: bool = False
    text: str = ""  # the final text, once done
    held: Done | None = None  # a Done kept back until the row's log-probs are computed
    settled: str = ""
    n_settled: int = 0
    ends: list[int] = field(default_factory=list)  # length of the row's text after each of its tokens


class TextTracker:
    """Turns generated token ids into text deltas per row, applying stop strings and per-row ``max_tokens``.

    ``step(new_tokens)`` takes ``[B]`` ids (one per row) and returns which rows are finished ``[B]`` bool.
    Text that could be the start of a stop string, an incomplete UTF-8 sequence (decoded as U+FFFD) and, for a
    tokenizer that cleans up spaces, the start of what the clean-up rewrites (:data:`CLEANUP_TAILS`) are held
    back until resolved, so streamed text never contains a stop string and is never taken back. Decoding is incremental (as
    vLLM's detokenizer): only the tokens after the row's settled text are decoded, read after the last
    :data:`~forgetlab.eco.serve.answers.PIECE_CONTEXT` tokens before them, and every :data:`SETTLE_AFTER`
    tokens that end on a whole character become settled text.
    """

    def __init__(self, rows: list[_Row], tokenizer: Any, eos_ids: set[int]) -> None:
        self.rows, self.tokenizer, self.eos_ids = rows, tokenizer, eos_ids
        self.specials = frozenset(tokenizer.all_special_ids)
        # text that a clean-up of spaces may still rewrite (none when the tokenizer does not clean up)
        self.unsettled = CLEANUP_TAILS if getattr(tokenizer, "clean_up_tokenization_spaces", False) else ()

    def _text(self, row: _Row) -> str:
        """The row's text so far, read after its prompt (:func:`~forgetlab.eco.serve.answers.decode_after`):
        the settled text and what the tokens after it add. Tokens settle only where their text cannot change
        with what follows: read after their context, ending on a whole character and not on the start of what a
        clean-up of spaces rewrites (" ." -> "."); past ``8 * SETTLE_AFTER`` pending tokens they settle anyway
        (a long run of spaces), so that a step's cost stays bounded."""
        n, cut = len(row.tokens), row.n_settled
        before = ordinary_tail(row.req.prompt_ids[-CONTEXT_SCAN:], row.tokens[max(0, cut - CONTEXT_SCAN):cut],
                               specials=self.specials)
        pending, joined = decode_joined(self.tokenizer, before, row.tokens[cut:], self.specials)
        text = row.settled + pending
        whole_chars = joined and not pending.endswith("\ufffd")
        if whole_chars and (n - cut >= 8 * SETTLE_AFTER
                            or (n - cut >= SETTLE_AFTER and not _held_suffix(text, self.unsettled))):
            row.settled, row.n_settled = text, n
        return text

    def _finish(self, row: _Row, reason: str, text: str | None = None) -> None:
        if text is None:
            text = self._text(row)
        if len(text) > row.sent:
            row.req.emit(Delta(row.index, text[row.sent:]))
            row.sent = len(text)
        row.done, row.text = True, text
        done = Done(row.index, reason, len(row.tokens))
        if row.req.logprobs is not None:
            row.held = done  # sent with its log-probs after the scoring pass
        else:
            row.req.emit(done)

    def step(self, new_tokens: Sequence[int]) -> list[bool]:
        for row, tok in zip(self.rows, new_tokens, strict=True):
            if row.done:
                continue
            if row.req.cancelled:
                row.done = True
                continue
            row.tokens.append(int(tok))
            text = self._text(row)
            row.ends.append(len(text))
            if tok in self.eos_ids:  # counted and scored like any token (as OpenAI and vLLM do), never shown
                self._finish(row, "stop", text)
                continue
            stops = row.req.stop
            if stops:
                start = max(0, row.sent - max(len(s) for s in stops))
                hits = [p for p in (text.find(s, start) for s in stops) if p >= 0]
                if hits:
                    self._finish(row, "stop", text[: min(hits)])
                    continue
            if len(row.tokens) >= row.req.max_tokens:
                self._finish(row, "length", text)
                continue
            whole = text.rstrip("\ufffd")  # a character still arriving could complete a stop string
            safe = len(whole) - _held_suffix(whole, (*stops, *self.unsettled))
            if safe > row.sent:
                row.req.emit(Delta(row.index, text[row.sent:safe]))
                row.sent = safe
        return [row.done for row in self.rows]

    def finish_all(self) -> None:
        """Close rows the generate call left open (it hit its overall length limit)."""
        for row in self.rows:
            if not row.done and not row.req.cancelled:
                self._finish(row, "length")


class _TrackerCriteria(StoppingCriteria):
    """HF stopping criterion feeding each step's new tokens to a :class:`TextTracker`."""

    def __init__(self, tracker: TextTracker) -> None:
        self.tracker = tracker

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        done = self.tracker.step(input_ids[:, -1].tolist())
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def _top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filter on one row ``[V]`` (transformers' ``TopPLogitsWarper``): keep the smallest set of tokens
    whose probability reaches ``top_p``, the rest set to -inf."""
    if top_p >= 1.0:
        return logits
    return TopPLogitsWarper(top_p)(None, logits[None])[0]


class RowSampler(LogitsProcessor):
    """Samples rows with temperature > 0 from their own seeded generator; greedy rows pass through.

    Generation runs with ``do_sample=False``: a sampled row's scores become 0 at the drawn token and -inf
    elsewhere, so argmax picks the draw. Every draw comes from the row's ``torch.Generator`` (seeded from the
    request's ``seed`` + choice index, or from ``secrets`` when no seed is given): no global seeding.
    """

    def __init__(self, temps: list[float], top_ps: list[float], gens: list[torch.Generator | None]) -> None:
        self.temps, self.top_ps, self.gens = temps, top_ps, gens
        self.any_sampled = any(t > 0 for t in temps)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if not self.any_sampled:
            return scores
        out = scores.clone()
        for i, (temp, top_p, gen) in enumerate(zip(self.temps, self.top_ps, self.gens, strict=True)):
            if temp <= 0:
                continue
            logits = _top_p_filter(scores[i].float().cpu() / temp, top_p)
            tok = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=gen).item()
            out[i].fill_(float("-inf"))
            out[i, tok] = 0.0
        return out


def row_generator(seed: int | None, choice: int) -> torch.Generator:
    """The CPU generator of one sampled choice: ``seed + choice`` when seeded, else fresh OS entropy."""
    gen = torch.Generator()
    gen.manual_seed((seed + choice) % (2**63) if seed is not None else secrets.randbits(63))
    return gen


def eos_ids_of(tokenizer: Any, model: Any) -> set[int]:
    """All end-of-sequence ids: the tokenizer's and the model's generation config's (an int or a list)."""
    ids: set[int] = set()
    for val in (getattr(tokenizer, "eos_token_id", None),
                getattr(getattr(model, "generation_config", None), "eos_token_id", None)):
        if isinstance(val, int):
            ids.add(val)
        elif isinstance(val, (list, tuple)):
            ids.update(int(v) for v in val)
    return ids


# ---------------------------------------------------------------- the transformers backend


class TransformersBackend:
    """The guard's own HF model: one left-padded ``generate`` per batch, flagged rows corrupted by the guard."""

    name = "transformers"

    def __init__(self, guard: GuardLike) -> None:
        self.guard = guard
        self.tokenizer = guard.tokenizer
        self.model = guard.model
        pad = self.tokenizer.pad_token_id
        self.eos_ids = eos_ids_of(self.tokenizer, self.model)
        self.pad_id = pad if pad is not None else (min(self.eos_ids) if self.eos_ids else 0)
        self.supports_logprobs = callable(getattr(guard, "score_sequences", None))

    def run_batch(self, requests: list[GenRequest]) -> None:
        flags = classify_batch(self.guard, requests)
        rows = [_Row(req, req.index_base + choice) for req in requests for choice in range(req.n)]
        row_flags = [flag for req, flag in zip(requests, flags, strict=True) for _ in range(req.n)]
        generating = [(r, f) for r, f in zip(rows, row_flags, strict=True) if r.req.max_tokens > 0]
        tracker = TextTracker([r for r, _ in generating], self.tokenizer, self.eos_ids)
        if generating:
            self._generate(generating, tracker)
        for row in rows:
            if row.req.max_tokens == 0 and not row.req.cancelled:  # echo only: nothing to generate
                row.done = True
                if row.req.logprobs is None:
                    row.req.emit(Done(row.index, "length", 0))
                else:
                    row.held = Done(row.index, "length", 0)
        scored = [(r, f) for r, f in zip(rows, row_flags, strict=True) if r.held is not None and not r.req.cancelled]
        if scored:
            for (row, _), lp in zip(scored, self._logprobs(scored), strict=True):
                row.req.emit(Done(row.held.index, row.held.finish_reason, row.held.completion_tokens, lp))

    def _generate(self, generating: list[tuple[_Row, bool]], tracker: TextTracker) -> None:
        """One left-padded ``generate`` call for the rows that generate (flagged rows corrupted)."""
        from transformers import LogitsProcessorList, StoppingCriteriaList

        rows = [r for r, _ in generating]
        row_flags = [f for _, f in generating]
        temps = [r.req.temperature for r in rows]
        top_ps = [r.req.top_p for r in rows]
        gens = [row_generator(r.req.seed, r.index - r.req.index_base) if r.req.temperature > 0 else None
                for r in rows]
        width = max(len(r.req.prompt_ids) for r in rows)
        device = self.model.device
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):  # left padding: prompts end where generation starts
            ids = row.req.prompt_ids
            input_ids[i, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
            attention[i, width - len(ids):] = 1
        # the model's own generation config stays in force (as for a plain greedy HF generate); sampling is
        # ours (RowSampler), so do_sample is off
        hf = {"max_new_tokens": max(r.req.max_tokens for r in rows), "do_sample": False,
              "pad_token_id": self.pad_id}
        if self.eos_ids:
            hf["eos_token_id"] = sorted(self.eos_ids)
        with torch.inference_mode():
            self.guard.generate(input_ids=input_ids.to(device), attention_mask=attention.to(device),
                                flags=row_flags, **hf,
                                logits_processor=LogitsProcessorList([RowSampler(temps, top_ps, gens)]),
                                stopping_criteria=StoppingCriteriaList([_TrackerCriteria(tracker)]))
        tracker.finish_all()

    def _logprobs(self, scored: list[tuple[_Row, bool]]) -> list[Logprobs]:
        """Log-probs of each row's scored tokens: the echoed prompt (from its second token) and the generated
        tokens that made it into the text, from one teacher-forced pass of the guard."""
        seqs, lens, starts, flags, tops = [], [], [], [], []
        for row, flag in scored:
            prompt = list(row.req.prompt_ids)
            seqs.append(prompt + _kept_tokens(row))
            lens.append(len(prompt))
            starts.append(1 if row.req.echo else len(prompt))
            flags.append(flag)
            tops.append(row.req.logprobs or 0)
        with torch.inference_mode():
            scores = self.guard.score_sequences(seqs, lens, flags, starts=starts, top_k=max(tops))
        out, specials = [], frozenset(self.tokenizer.all_special_ids)
        for i, (seq, start, k) in enumerate(zip(seqs, starts, tops, strict=True)):
            lps = [float(x) for x in scores.logprobs[i]]
            top = [[(int(t), float(v)) for t, v in zip(ids[:k], vals[:k], strict=True)]
                   for ids, vals in zip(scores.top_ids[i], scores.top_logprobs[i], strict=True)] if k else \
                [[] for _ in lps]
            lead = [None] if start == 1 else []  # the first prompt token: nothing predicts it
            out.append(Logprobs(seq[start - len(lead):], [*lead, *lps], [*lead, *top],
                                n_prompt=lens[i] if start == 1 else 0,
                                context=tuple(ordinary_tail(seq[max(0, start - len(lead) - CONTEXT_SCAN):
                                                                    start - len(lead)], specials=specials))))
        return out


def _kept_tokens(row: _Row) -> list[int]:
    """The shortest prefix of the row's generated tokens whose text covers its final ``text`` (all of them
    unless a stop string cut the text short), from the text lengths the tracker recorded per token."""
    need = len(row.text)
    if not row.ends or row.ends[-1] <= need:  # not cut: every token, the end-of-sequence one included
        return list(row.tokens)
    if need == 0:  # a stop string at the very start
        return []
    return row.tokens[:next((i + 1 for i, end in enumerate(row.ends) if end >= need), len(row.tokens))]

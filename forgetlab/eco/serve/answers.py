"""The answers of the ECO server in OpenAI's shapes: JSON bodies, server-sent-event chunks and log-probs.

Completions log-probs use the legacy shape ``{tokens, token_logprobs, top_logprobs, text_offset}`` (the first
echoed prompt token has ``null`` log-prob and ``null`` alternatives, as in OpenAI and vLLM); chat log-probs
use ``{content: [{token, logprob, bytes, top_logprobs: [...]}], refusal: null}``. ``top_logprobs`` of a
completion holds the ``k`` most likely tokens plus the chosen one (vLLM's convention; lm-evaluation-harness
reads a token as greedy when its log-prob is the largest there). Every token is given as it reads in its
sequence, leading space included (:func:`token_piece`): the ordinary tokens join into the text and
``text_offset`` indexes it. In a stream, a choice's log-probs arrive in its finish chunk (the text deltas are cut
at character, not token, boundaries).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .types import Logprobs


class Answer:
    """What a non-streamed answer is built from: the request's shape and each choice's outcome."""

    def __init__(self, chat: bool, rid: str, created: int, model: str, prompt_tokens: int,
                 echo_texts: list[str] | None = None) -> None:
        self.chat, self.rid, self.created, self.model = chat, rid, created, model
        self.prompt_tokens, self.echo_texts = prompt_tokens, echo_texts

    def usage(self, completion_tokens: int) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": completion_tokens,
                "total_tokens": self.prompt_tokens + completion_tokens}

    def base(self) -> dict[str, Any]:
        obj = ("chat.completion.chunk" if self.chat else "text_completion")
        return {"id": self.rid, "object": obj, "created": self.created, "model": self.model}


PIECE_CONTEXT = 6
"""Tokens before a token decoded with it to find its text: enough for a decoder's word-boundary rules (a
SentencePiece space, a byte-level character split over tokens)."""


CONTEXT_SCAN = 256
"""Tokens looked back at most to find a piece's :data:`PIECE_CONTEXT` ordinary tokens (past a run of specials)."""


def ordinary_tail(*parts: Sequence[int], specials: frozenset[int]) -> list[int]:
    """The last :data:`PIECE_CONTEXT` ordinary tokens of ``parts`` joined (the last part's tail first, then the
    parts before it), looking back at most :data:`CONTEXT_SCAN` tokens: the context that decoding the whole
    sequence gives the tokens after it, where the last few tokens alone may all be special."""
    out: list[int] = []
    scanned = 0
    for seq in reversed(parts):
        for i in range(len(seq) - 1, -1, -1):
            if scanned == CONTEXT_SCAN or len(out) == PIECE_CONTEXT:
                return out[::-1]
            scanned += 1
            if seq[i] not in specials:
                out.append(seq[i])
    return out[::-1]


def decode_after(tokenizer: Any, context: Sequence[int], tokens: Sequence[int], specials: frozenset[int]) -> str:
    """The text ``tokens`` add after ``context`` (its last :data:`PIECE_CONTEXT` ordinary tokens), specials
    skipped: a continuation keeps the space a SentencePiece decoder writes between words (" Paris" after "is",
    as OpenAI and vLLM return it), which decoding the continuation alone drops."""
    return decode_joined(tokenizer, context, tokens, specials)[0]


def decode_joined(tokenizer: Any, context: Sequence[int], tokens: Sequence[int],
                  specials: frozenset[int]) -> tuple[str, bool]:
    """:func:`decode_after`'s text, and whether it was read after the context (False: the context's text was
    not a prefix of the joint text, e.g. a clean-up of spaces joined them, and ``tokens`` were decoded alone)."""
    window = [t for t in context[-PIECE_CONTEXT:] if t not in specials]
    head = tokenizer.decode(window, skip_special_tokens=True).rstrip("\ufffd")  # bytes of a character to come
    full = tokenizer.decode([*window, *tokens], skip_special_tokens=True)
    if full.startswith(head):
        return full[len(head):], True
    return tokenizer.decode(list(tokens), skip_special_tokens=True), False


def token_piece(tokenizer: Any, context: list[int], token_id: int, specials: frozenset[int],
                last: bool = False) -> str:
    """The text ``token_id`` adds after ``context`` (leading space included, as OpenAI's tokens carry it);
    a special token is spelled out (``</s>``: it adds nothing to the text). Decoding a token alone drops the
    space a SentencePiece decoder writes only between tokens, which put ``text_offset`` out of step.
    ``specials``: the tokenizer's special ids (``frozenset(tokenizer.all_special_ids)``, computed once). The
    bytes of a character split over tokens read as "" until its last token (a text's ``last`` token keeps them,
    as U+FFFD, like the text)."""
    if token_id in specials:
        return tokenizer.decode([token_id], skip_special_tokens=False)
    piece = decode_after(tokenizer, context, [token_id], specials)
    return piece if last else piece.rstrip("\ufffd")


def _last_ordinary(seq: list[int], specials: frozenset[int]) -> int:
    """Index of the last token of ``seq`` that is not special (-1: none)."""
    return next((i for i in range(len(seq) - 1, -1, -1) if seq[i] not in specials), -1)


def completion_logprobs(tokenizer: Any, lp: Logprobs, offset: int = 0) -> dict[str, Any]:
    """Legacy completions log-probs; ``text_offset`` counts characters from ``offset`` (where the scored text
    starts in the choice's text: 0 with echo, else after nothing), each token's text as it reads in the
    sequence (:func:`token_piece`), so that the tokens but the special ones join into the text."""
    tokens, offsets, tops = [], [], []
    pos, seq, specials = offset, [*lp.context, *lp.token_ids], frozenset(tokenizer.all_special_ids)
    last = _last_ordinary(seq, specials)
    for i, (tid, chosen, alts) in enumerate(zip(lp.token_ids, lp.logprobs, lp.top, strict=True), len(lp.context)):
        before = ordinary_tail(seq[max(0, i - CONTEXT_SCAN):i], specials=specials)
        text = token_piece(tokenizer, before, tid, specials, last=i == last)
        tokens.append(text)
        offsets.append(pos)
        pos += 0 if tid in specials else len(text)
        if alts is None:
            tops.append(None)
            continue
        top = {token_piece(tokenizer, before, a, specials): v for a, v in alts}
        top.setdefault(text, chosen)
        tops.append(top)
    return {"tokens": tokens, "token_logprobs": lp.logprobs, "top_logprobs": tops, "text_offset": offsets}


def chat_logprobs(tokenizer: Any, lp: Logprobs) -> dict[str, Any]:
    """Chat log-probs (``logprobs.content``) of the generated tokens."""
    seq, k, specials = [*lp.context, *lp.token_ids], len(lp.context), frozenset(tokenizer.all_special_ids)
    last = _last_ordinary(seq, specials)

    def entry(i: int, tid: int, value: float) -> dict[str, Any]:
        before = ordinary_tail(seq[max(0, k + i - CONTEXT_SCAN):k + i], specials=specials)
        text = token_piece(tokenizer, before, tid, specials, last=k + i == last)
        return {"token": text, "logprob": value, "bytes": list(text.encode("utf-8"))}

    content = []
    for i in range(lp.n_prompt, len(lp.token_ids)):
        alts = lp.top[i] or []
        content.append({**entry(i, lp.token_ids[i], lp.logprobs[i]),
                        "top_logprobs": [entry(i, a, v) for a, v in alts]})
    return {"content": content, "refusal": None}


def format_logprobs(tokenizer: Any, chat: bool, lp: Logprobs | None) -> dict[str, Any] | None:
    """The ``logprobs`` member of one choice (None when not asked for)."""
    if lp is None:
        return None
    return chat_logprobs(tokenizer, lp) if chat else completion_logprobs(tokenizer, lp)


def answer_body(ans: Answer, texts: list[str], reasons: list[str | None], logprobs: list[dict | None],
                used: int) -> dict[str, Any]:
    """The JSON body of a non-streamed completion or chat completion (echoed prompts in front of the text)."""
    choices = []
    for i, (text, reason, lp) in enumerate(zip(texts, reasons, logprobs, strict=True)):
        if ans.chat:
            choices.append({"index": i, "message": {"role": "assistant", "content": text}, "logprobs": lp,
                            "finish_reason": reason})
        else:
            echo = ans.echo_texts[i] if ans.echo_texts else ""
            choices.append({"index": i, "text": echo + text, "logprobs": lp, "finish_reason": reason})
    return {"id": ans.rid, "object": "chat.completion" if ans.chat else "text_completion",
            "created": ans.created, "model": ans.model, "choices": choices, "usage": ans.usage(used)}


def sse(obj: Any) -> str:
    """One server-sent event carrying ``obj`` as compact JSON."""
    return f"data: {json.dumps(obj, separators=(',', ':'))}\n\n"


def chunk(ans: Answer, index: int, text: str | None, finish: str | None, *, role: bool = False,
          logprobs: dict | None = None) -> dict[str, Any]:
    """One streamed chunk of choice ``index``: a role announcement (chat), a text delta or a finish."""
    if ans.chat:
        delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else (
            {"content": text} if text is not None else {})
        choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
    else:
        choice = {"index": index, "text": text or "", "logprobs": logprobs, "finish_reason": finish}
    return {**ans.base(), "choices": [choice]}

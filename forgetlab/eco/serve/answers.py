"""The answers of the ECO server in OpenAI's shapes: JSON bodies, server-sent-event chunks and log-probs.

Completions log-probs use the legacy shape ``{tokens, token_logprobs, top_logprobs, text_offset}`` (the first
echoed prompt token has ``null`` log-prob and ``null`` alternatives, as in OpenAI and vLLM); chat log-probs
use ``{content: [{token, logprob, bytes, top_logprobs: [...]}], refusal: null}``. ``top_logprobs`` of a
completion holds the ``k`` most likely tokens plus the chosen one (vLLM's convention; lm-evaluation-harness
reads a token as greedy when its log-prob is the largest there). In a stream, a choice's log-probs arrive in
its finish chunk (the text deltas are cut at character, not token, boundaries).
"""

from __future__ import annotations

import json
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


def token_text(tokenizer: Any, token_id: int) -> str:
    """One token as text (special tokens spelled out, as APIs list them)."""
    return tokenizer.decode([token_id], skip_special_tokens=False)


def completion_logprobs(tokenizer: Any, lp: Logprobs, offset: int = 0) -> dict[str, Any]:
    """Legacy completions log-probs; ``text_offset`` counts characters from ``offset`` (where the scored text
    starts in the choice's text: 0 with echo, else after nothing) using each token's text without specials."""
    tokens, offsets, tops = [], [], []
    pos = offset
    for tid, chosen, alts in zip(lp.token_ids, lp.logprobs, lp.top, strict=True):
        text = token_text(tokenizer, tid)
        tokens.append(text)
        offsets.append(pos)
        pos += len(tokenizer.decode([tid], skip_special_tokens=True))
        if alts is None:
            tops.append(None)
            continue
        top = {token_text(tokenizer, a): v for a, v in alts}
        top.setdefault(text, chosen)
        tops.append(top)
    return {"tokens": tokens, "token_logprobs": lp.logprobs, "top_logprobs": tops, "text_offset": offsets}


def chat_logprobs(tokenizer: Any, lp: Logprobs) -> dict[str, Any]:
    """Chat log-probs (``logprobs.content``) of the generated tokens."""
    def entry(tid: int, value: float) -> dict[str, Any]:
        text = token_text(tokenizer, tid)
        return {"token": text, "logprob": value, "bytes": list(text.encode("utf-8"))}

    content = []
    for tid, chosen, alts in zip(lp.token_ids[lp.n_prompt:], lp.logprobs[lp.n_prompt:], lp.top[lp.n_prompt:],
                                 strict=True):
        content.append({**entry(tid, chosen), "top_logprobs": [entry(a, v) for a, v in alts or []]})
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

"""The ``vllm`` backend: the guard classifies and corrupts, vLLM generates.

Flagged prompts go to vLLM as prompt embeddings ``[T, d]`` (the guard's corrupted input embeddings),
unflagged prompts as their token ids (the same tokens the transformers backend would see; sending ids
rather than text avoids vLLM re-tokenizing a chat-templated prompt and adding a second BOS). Two modes:

- in process: ``vllm.LLM(model, enable_prompt_embeds=True)`` and ``llm.generate([{"prompt_embeds": t} |
  {"prompt_token_ids": ids}], sampling_params)`` (vLLM >= 0.11). Streaming answers arrive as one piece.
- remote (``url=`` given): a ``vllm serve MODEL --enable-prompt-embeds`` server, one ``POST /v1/completions``
  per prompt with ``prompt_embeds`` = base64 of ``torch.save`` bytes (:mod:`forgetlab.eco.serve.backends.payload`).

vLLM is an optional extra (``pip install forgetlab[vllm]``); it is imported only when this backend is built.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import torch

from ....errors import ForgetlabError
from ...guard import GuardLike
from ..answers import decode_after
from ..types import Delta, Done, GenRequest
from . import classify_batch
from .payload import encode_prompt_embeds


def guard_prompt_embeds(guard: GuardLike, req: GenRequest) -> torch.Tensor:
    """The ``[T, d]`` input embeddings of a flagged request's prompt, corrupted by the guard."""
    fn = getattr(guard, "prompt_embeddings", None)
    if fn is None:
        raise ForgetlabError(f"{type(guard).__name__} has no prompt_embeddings(); the vllm backend needs it")
    emb = fn(req.prompt_ids, flagged=True)
    return emb.detach().to("cpu")


def restore_leading_space(tokenizer: Any, prompt_ids: Sequence[int], token_ids: Sequence[int], text: str) -> str:
    """vLLM decodes a ``prompt_embeds`` request's tokens with no prompt tokens before them, where a SentencePiece
    decoder drops the space before the first word ("Paris" for " Paris"); put back the leading whitespace that
    reading the first token after the prompt gives (:func:`~forgetlab.eco.serve.answers.decode_after`)."""
    if not token_ids or text[:1].isspace():
        return text
    first = decode_after(tokenizer, prompt_ids, list(token_ids[:1]), frozenset(tokenizer.all_special_ids))
    word = first.lstrip()
    if word and word != first and text.startswith(word[:1]):
        return first[:len(first) - len(word)] + text
    return text


def _sampling(req: GenRequest) -> dict[str, Any]:
    """OpenAI/vLLM sampling fields of one request (temperature 0 is greedy in vLLM too)."""
    out: dict[str, Any] = {"n": req.n, "temperature": req.temperature, "top_p": req.top_p,
                           "max_tokens": req.max_tokens}
    if req.stop:
        out["stop"] = list(req.stop)
    if req.seed is not None:
        out["seed"] = req.seed
    return out


def remote_payload(guard: GuardLike, req: GenRequest, model: str) -> dict[str, Any]:
    """The JSON body for a remote vLLM ``/v1/completions`` call: embeds when flagged, token ids otherwise."""
    body: dict[str, Any] = {"model": model, **_sampling(req)}
    if req.flagged:
        body["prompt_embeds"] = encode_prompt_embeds(guard_prompt_embeds(guard, req))
    else:
        body["prompt"] = list(req.prompt_ids)
    return body


class VllmBackend:
    """Generation on vLLM; the guard only classifies and, for flagged prompts, builds corrupted embeddings."""

    name = "vllm"
    supports_logprobs = False  # logprobs and echo are refused with a 400 naming the field

    def __init__(self, guard: GuardLike, url: str | None = None, model: str | None = None,
                 timeout_s: float = 600.0, **engine_kwargs: Any) -> None:
        self.guard = guard
        self.url = url.rstrip("/") if url else None
        self.timeout_s = timeout_s
        if self.url is not None:
            self.model = model or "default"
            self.llm = None
            return
        try:
            from vllm import LLM
        except ImportError:
            raise ForgetlabError("backend 'vllm' needs the vllm package (pip install 'forgetlab[vllm]'), "
                                 "or pass --vllm-url of a running `vllm serve --enable-prompt-embeds`") from None
        path = (model or getattr(guard, "model_path", None)
                or getattr(getattr(guard.model, "config", None), "_name_or_path", None))
        if not path:
            raise ForgetlabError("backend 'vllm' needs the base model's folder (the guard does not record one)")
        self.model = str(path)
        self.llm = LLM(model=self.model, enable_prompt_embeds=True, **engine_kwargs)

    def run_batch(self, requests: list[GenRequest]) -> None:
        classify_batch(self.guard, requests)
        if self.llm is None:
            asyncio.run(self._remote_batch(requests))
        else:
            self._local_batch(requests)

    def _local_batch(self, requests: list[GenRequest]) -> None:
        from vllm import SamplingParams

        prompts = [{"prompt_embeds": guard_prompt_embeds(self.guard, r)} if r.flagged
                   else {"prompt_token_ids": list(r.prompt_ids)} for r in requests]
        params = [SamplingParams(**_sampling(r)) for r in requests]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        for req, out in zip(requests, outputs, strict=True):
            for j, comp in enumerate(out.outputs):
                text = (restore_leading_space(self.guard.tokenizer, req.prompt_ids, comp.token_ids, comp.text)
                        if req.flagged else comp.text)
                req.emit(Delta(req.index_base + j, text))
                req.emit(Done(req.index_base + j, comp.finish_reason or "length", len(comp.token_ids)))

    async def _remote_batch(self, requests: list[GenRequest]) -> None:
        import httpx

        async with httpx.AsyncClient(base_url=self.url, timeout=self.timeout_s) as client:
            answers = await asyncio.gather(*(client.post("/v1/completions",
                                                         json=remote_payload(self.guard, r, self.model))
                                             for r in requests))
        for req, resp in zip(requests, answers, strict=True):
            if resp.status_code != 200:
                raise ForgetlabError(f"vLLM server answered {resp.status_code}")
            choices = sorted(resp.json()["choices"], key=lambda c: c["index"])
            usage = resp.json().get("usage") or {}
            per_choice = int(usage.get("completion_tokens", 0)) // max(1, len(choices))
            for j, ch in enumerate(choices):
                req.emit(Delta(req.index_base + j, ch["text"]))
                req.emit(Done(req.index_base + j, ch.get("finish_reason") or "length", per_choice))

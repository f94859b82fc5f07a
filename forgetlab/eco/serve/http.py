"""The OpenAI-compatible HTTP layer: authorization, request validation, prompt building, answers.

Routes: ``POST /v1/completions`` (``logprobs``, ``echo``), ``POST /v1/chat/completions`` (``logprobs``,
``top_logprobs``); ``stream: true`` answers as SSE chunks in OpenAI's format, ending with ``data: [DONE]``;
``GET /v1/models``, ``GET /health``, ``GET /metrics`` (Prometheus), ``GET /openapi.json`` (the API's
description). With an API key, every ``/v1`` route needs ``Authorization: Bearer KEY`` (as vLLM's server
does; ``/health`` and ``/metrics`` stay open for probes and scrapers). Every generation answer carries
``X-Forgetlab-Flagged: true|false`` (was any prompt of the request flagged by the guard's classifier); the forget
content itself is never echoed. Every error is an OpenAI-style JSON body ``{"error": {"message", "type",
"param", "code"}}`` with a 4xx/5xx status, and the server keeps serving.

Defaults as vLLM's server: ``max_tokens`` of a chat completion is the context left after the prompt, of a
completion 16 (OpenAI's), both capped by the server's ``max_tokens`` limit and by the context left. A served guard
sees what it is sent as one prompt: with ``echo`` (lm-evaluation-harness's way of scoring a context and its
continuation) the whole text, continuation included, is classified and, when flagged, corrupted; a guard's own
:meth:`~forgetlab.eco.guard.EcoGuard.answer_logprobs` corrupts only the context.

Before any tokenizing, a prompt longer than ``max_prompt_tokens`` times the longest vocabulary entry (x2 for
normalization) is refused by its length in characters; tokenizing itself runs off the event loop
(:meth:`~forgetlab.eco.serve.engine.ServeEngine.off_loop`).
"""

from __future__ import annotations

import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .answers import Answer, answer_body, chunk, format_logprobs, sse
from .engine import ServeEngine
from .metrics import MetricsMiddleware
from .openapi import describe
from .schemas import ChatBody, CommonBody, CompletionBody, FieldError, Message, parse_body
from .types import Delta, Done, Event, Failed, Flagged, GenRequest

FLAG_HEADER = "X-Forgetlab-Flagged"
COMPLETIONS_DEFAULT_MAX_TOKENS = 16  # OpenAI's (and vLLM's) default for /v1/completions


class ApiError(Exception):
    """An error answered as OpenAI's JSON error body with ``status``."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status)


# ---------------------------------------------------------------- reading and checking a request


async def _read_json(request: Request, limit: int) -> dict[str, Any]:
    """Read the body (refusing more than ``limit`` bytes, declared or actual) and parse a JSON object."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body of {declared} bytes is larger than the limit of {limit} bytes",
                       code="body_too_large")
    chunks, size = [], 0
    async for piece in request.stream():
        size += len(piece)
        if size > limit:
            raise ApiError(413, f"request body is larger than the limit of {limit} bytes", code="body_too_large")
        chunks.append(piece)
    try:
        data = json.loads(b"".join(chunks))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"request body is not valid JSON ({getattr(exc, 'msg', 'bad encoding')})",
                       code="invalid_json") from None
    except RecursionError:
        raise ApiError(400, "request body is nested too deeply", code="invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "request body must be a JSON object", code="invalid_json")
    return data


def _message_text(msg: Message) -> str:
    if msg.content is None:
        return ""
    if isinstance(msg.content, str):
        return msg.content
    return "".join(part.text for part in msg.content)


def _check_chars(engine: ServeEngine, texts: list[str], param: str) -> None:
    """Refuse a prompt that is too long by its characters alone, before anything tokenizes it."""
    for text in texts:
        if len(text) > engine.max_prompt_chars:
            raise ApiError(400, f"the prompt has {len(text)} characters; at most {engine.max_prompt_chars} can fit "
                           f"the limit of {engine.limits.max_prompt_tokens} tokens", param=param,
                           code="context_length_exceeded")


def _completion_prompts(engine: ServeEngine, body: CompletionBody) -> list[tuple[list[int], str]]:
    """``(token ids, text)`` of each prompt of a completion request (runs on the tokenizer thread)."""
    tok = engine.tokenizer
    prompt = body.prompt
    if isinstance(prompt, str):
        prompt = [prompt]
    if prompt and isinstance(prompt[0], int):
        prompt = [prompt]
    if not prompt:
        raise ApiError(400, "prompt must not be empty", param="prompt")
    _check_chars(engine, [p for p in prompt if isinstance(p, str)], "prompt")
    vocab = len(tok)
    out = []
    for item in prompt:
        if isinstance(item, str):
            out.append((list(tok(item)["input_ids"]), item))
        else:
            bad = [t for t in item if not 0 <= t < vocab]
            if bad:
                raise ApiError(400, f"token id {bad[0]} is outside the vocabulary [0, {vocab})", param="prompt")
            out.append((list(item), tok.decode(item, skip_special_tokens=True)))
    return out


def _chat_prompt(engine: ServeEngine, body: ChatBody) -> list[tuple[list[int], str]]:
    """The chat template applied to the messages, tokenized (runs on the tokenizer thread)."""
    tok = engine.tokenizer
    if not getattr(tok, "chat_template", None):
        raise ApiError(400, "this model has no chat template; use /v1/completions", param="messages")
    messages = [{"role": m.role, "content": _message_text(m)} for m in body.messages]
    _check_chars(engine, ["".join(m["content"] for m in messages)], "messages")
    try:
        text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    except Exception as exc:  # jinja templates raise their own errors for unsupported conversations
        raise ApiError(400, f"the chat template rejected these messages ({type(exc).__name__}: {exc})",
                       param="messages") from None
    ids = list(tok(text, add_special_tokens=False)["input_ids"])
    # the classifier sees what the user wrote (every message), not the template's markup
    return [(ids, "\n".join(m["content"] for m in messages))]


class _Plan:
    """A validated request turned into backend requests plus what the answer needs."""

    def __init__(self, reqs: list[GenRequest], n: int, body: CommonBody, chat: bool,
                 echo_texts: list[str] | None) -> None:
        self.reqs, self.n, self.chat = reqs, n, chat
        self.stream = bool(body.stream)
        self.include_usage = bool(body.stream_options and body.stream_options.include_usage)
        self.choices = len(reqs) * n
        self.prompt_tokens = sum(len(r.prompt_ids) for r in reqs)
        self.echo_texts = echo_texts


def _scoring_options(engine: ServeEngine, body: CommonBody, chat: bool) -> tuple[int | None, bool]:
    """``(logprobs alternatives or None, echo)`` of a request, checked against the limits and the backend."""
    limit = engine.limits.max_logprobs
    if chat:
        if body.top_logprobs is not None and not body.logprobs:
            raise ApiError(400, "top_logprobs: needs logprobs: true", param="top_logprobs", code="invalid_value")
        k, field = ((body.top_logprobs or 0) if body.logprobs else None), "top_logprobs"
        echo = False
    else:
        k, field, echo = body.logprobs, "logprobs", bool(body.echo)
    if k is not None and k > limit:
        raise ApiError(400, f"{field}={k} is larger than the limit of {limit}", param=field, code="invalid_value")
    if (k is not None or echo) and not getattr(engine.backend, "supports_logprobs", False):
        param = "echo" if echo else "logprobs"
        raise ApiError(400, f"{param}: not supported by the {engine.backend.name} backend", param=param,
                       code="unsupported_parameter")
    return k, echo


def _max_tokens(engine: ServeEngine, body: CommonBody, chat: bool, echo: bool, n_ids: int) -> int:
    """The request's max_tokens, or the default (chat: the context left; completions: 16), within the limits."""
    limits, ctx = engine.limits, engine.context_length
    left = ctx - n_ids if ctx is not None else limits.max_tokens
    asked = body.max_completion_tokens if chat and body.max_completion_tokens is not None else body.max_tokens
    if asked is None:
        asked = min(limits.max_tokens, left, limits.max_tokens if chat else COMPLETIONS_DEFAULT_MAX_TOKENS)
        if asked < 1:
            raise ApiError(400, f"the prompt ({n_ids} tokens) leaves no room in the model's context length of "
                           f"{ctx}", param="messages" if chat else "prompt", code="context_length_exceeded")
    if asked == 0 and not echo:
        raise ApiError(400, "max_tokens: must be at least 1 (0 only with echo)", param="max_tokens",
                       code="invalid_value")
    if asked > limits.max_tokens:
        raise ApiError(400, f"max_tokens={asked} is larger than the limit of {limits.max_tokens}",
                       param="max_tokens", code="max_tokens_exceeded")
    if ctx is not None and n_ids + asked > ctx:
        raise ApiError(400, f"prompt ({n_ids} tokens) + max_tokens ({asked}) exceed the model's "
                       f"context length of {ctx}", param="max_tokens", code="context_length_exceeded")
    return asked


def _plan(engine: ServeEngine, body: CommonBody, prompts: list[tuple[list[int], str]], chat: bool) -> _Plan:
    """Check limits and build one :class:`GenRequest` per prompt."""
    limits = engine.limits
    n = body.n or 1
    if n > limits.max_n:
        raise ApiError(400, f"n={n} is larger than the limit of {limits.max_n}", param="n")
    if n * len(prompts) > limits.max_batch_size:
        raise ApiError(400, f"{len(prompts)} prompt(s) x n={n} choices exceed the server's batch size "
                       f"of {limits.max_batch_size}", param="n")
    k, echo = _scoring_options(engine, body, chat)
    stops = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    stops = tuple(s for s in stops if s)
    temperature = 1.0 if body.temperature is None else body.temperature
    reqs = []
    for ids, text in prompts:
        if not ids:
            raise ApiError(400, "the prompt is empty", param="prompt")
        if len(ids) > limits.max_prompt_tokens:
            raise ApiError(400, f"the prompt has {len(ids)} tokens; the limit is {limits.max_prompt_tokens}",
                           param="prompt", code="context_length_exceeded")
        reqs.append(GenRequest(prompt_ids=ids, classify_text=text,
                               max_tokens=_max_tokens(engine, body, chat, echo, len(ids)),
                               temperature=temperature, top_p=1.0 if body.top_p is None else body.top_p,
                               stop=stops, seed=body.seed, n=n, logprobs=k, echo=echo,
                               index_base=len(reqs) * n))
    echo_texts = [text for _, text in prompts for _ in range(n)] if echo else None
    return _Plan(reqs, n, body, chat, echo_texts)


async def _parse(engine: ServeEngine, request: Request, chat: bool) -> _Plan:
    """Read and validate a generation request into a plan (limits checked, prompts tokenized off the loop)."""
    data = await _read_json(request, engine.limits.max_body_bytes)
    try:
        body = parse_body("chat" if chat else "completions", data)
    except FieldError as exc:
        raise ApiError(400, exc.message, param=exc.param, code=exc.code) from None
    if body.model is not None and body.model != engine.model_name:
        raise ApiError(404, f"model {body.model!r} does not exist; this server serves "
                       f"{engine.model_name!r}", param="model", code="model_not_found")
    prompts = await engine.off_loop(_chat_prompt if chat else _completion_prompts, engine, body)
    return _plan(engine, body, prompts, chat)


# ---------------------------------------------------------------- waiting for the backend


async def _await_flags(events: Any, count: int) -> tuple[list[bool], list[Event]]:
    """Wait for ``count`` Flagged events; keep other events that arrive meanwhile, in order."""
    flags: list[bool] = []
    early: list[Event] = []
    while len(flags) < count:
        ev = await events.get()
        if isinstance(ev, Flagged):
            flags.append(ev.flagged)
        elif isinstance(ev, Failed):
            raise ApiError(500, ev.message, type="server_error")
        else:
            early.append(ev)
    return flags, early


async def _events_after(early: list[Event], events: Any, choices: int) -> AsyncIterator[Event]:
    """Yield buffered then live events until every choice is Done (or a failure)."""
    done = 0
    pending = list(early)
    while done < choices:
        ev = pending.pop(0) if pending else await events.get()
        if isinstance(ev, Flagged):
            continue
        yield ev
        if isinstance(ev, Failed):
            return
        if isinstance(ev, Done):
            done += 1


class _Admission:
    """One admitted request's slot: ``release()`` frees it and cancels its rows, once, whatever happens."""

    def __init__(self, engine: ServeEngine, plan: _Plan) -> None:
        if not engine.try_admit():
            raise ApiError(429, f"the server is at its limit of {engine.limits.max_concurrent} concurrent "
                           "requests; retry later", type="rate_limit_error", code="too_many_requests")
        self.engine, self.plan, self.released = engine, plan, False

    def release(self) -> None:
        if not self.released:
            self.released = True
            for req in self.plan.reqs:
                req.cancelled = True
            self.engine.release()


async def _collect(engine: ServeEngine, plan: _Plan, early: list[Event],
                   events: Any) -> tuple[list[str], list[str | None], list[dict | None], int]:
    """Texts, finish reasons, log-probs and completion tokens of every choice (a non-streamed answer)."""
    texts = [""] * plan.choices
    reasons: list[str | None] = [None] * plan.choices
    logprobs: list[dict | None] = [None] * plan.choices
    used = 0
    async for ev in _events_after(early, events, plan.choices):
        if isinstance(ev, Failed):
            raise ApiError(500, ev.message, type="server_error")
        if isinstance(ev, Delta):
            texts[ev.index] += ev.text
        elif isinstance(ev, Done):
            reasons[ev.index] = ev.finish_reason
            logprobs[ev.index] = format_logprobs(engine.tokenizer, plan.chat, ev.logprobs)
            used += ev.completion_tokens
    engine.metrics.completion_tokens.inc(used)
    return texts, reasons, logprobs, used


async def _handle(engine: ServeEngine, request: Request, chat: bool) -> Any:
    """One generation request: plan, admit, submit, wait for the flags, then stream or collect the answer."""
    _authorize(request)
    plan = await _parse(engine, request, chat)
    slot = _Admission(engine, plan)
    try:
        events = engine.submit(plan.reqs)
        flags, early = await _await_flags(events, len(plan.reqs))
    except BaseException:
        slot.release()
        raise
    engine.metrics.observe_flags(flags)
    engine.metrics.prompt_tokens.inc(plan.prompt_tokens)
    headers = {FLAG_HEADER: "true" if any(flags) else "false"}
    ans = Answer(chat, ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex, int(time.time()),
                 engine.model_name, plan.prompt_tokens, plan.echo_texts)
    if plan.stream:
        stream = _stream(engine, plan, ans, early, events, slot.release)
        return StreamingResponse(stream, media_type="text/event-stream",
                                 headers={**headers, "Cache-Control": "no-cache"})
    try:
        texts, reasons, logprobs, used = await _collect(engine, plan, early, events)
    finally:
        slot.release()
    return JSONResponse(answer_body(ans, texts, reasons, logprobs, used), headers=headers)


async def _stream(engine: ServeEngine, plan: _Plan, ans: Answer, early: list[Event], events: Any,
                  release: Any) -> AsyncIterator[str]:
    """SSE chunks in OpenAI's format: role (chat) or echoed prompt first, text deltas, a finish chunk per choice
    (with its log-probs), usage, [DONE]."""
    try:
        for i in range(plan.choices):
            if plan.chat:
                yield sse(chunk(ans, i, None, None, role=True))
            elif plan.echo_texts:
                yield sse(chunk(ans, i, plan.echo_texts[i], None))
        used = 0
        async for ev in _events_after(early, events, plan.choices):
            if isinstance(ev, Failed):
                yield sse({"error": {"message": ev.message, "type": "server_error", "param": None, "code": None}})
                break
            if isinstance(ev, Delta):
                yield sse(chunk(ans, ev.index, ev.text, None))
            elif isinstance(ev, Done):
                used += ev.completion_tokens
                lp = format_logprobs(engine.tokenizer, plan.chat, ev.logprobs)
                yield sse(chunk(ans, ev.index, None, ev.finish_reason, logprobs=lp))
        engine.metrics.completion_tokens.inc(used)
        if plan.include_usage:
            yield sse({**ans.base(), "choices": [], "usage": ans.usage(used)})
        yield "data: [DONE]\n\n"
    finally:
        release()


# ---------------------------------------------------------------- the app


def _authorize(request: Request) -> None:
    """Refuse a ``/v1`` request without the server's API key as ``Authorization: Bearer KEY`` (when it has one)."""
    key = request.app.state.api_key
    if not key:
        return
    got = request.headers.get("authorization", "")
    scheme, _, token = got.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
        raise ApiError(401, "missing or incorrect API key (send Authorization: Bearer KEY)",
                       code="invalid_api_key")


def _error_handlers(app: FastAPI) -> None:
    """Every error becomes OpenAI's JSON error body; an unexpected one a 500 that names only its type."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return ApiError(exc.status_code, str(exc.detail), type=kind).response()

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        return ApiError(500, f"internal error ({type(exc).__name__})", type="server_error").response()


def create_app(engine: ServeEngine, api_key: str | None = None) -> FastAPI:
    """Build the FastAPI app around ``engine`` (one app per engine); ``api_key`` guards the ``/v1`` routes."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    app = FastAPI(title="forgetlab ECO server", docs_url=None, redoc_url=None, openapi_url="/openapi.json")
    app.state.engine, app.state.api_key = engine, api_key or None
    app.add_middleware(MetricsMiddleware, metrics=engine.metrics)
    _error_handlers(app)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "in_flight": engine.in_flight, "backend": engine.backend.name}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(engine.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        _authorize(request)
        return {"object": "list", "data": [{"id": engine.model_name, "object": "model", "created": 0,
                                            "owned_by": "forgetlab"}]}

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        return await _handle(engine, request, chat=False)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        return await _handle(engine, request, chat=True)

    describe(app, secured=bool(api_key))
    return app

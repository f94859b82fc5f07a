"""The OpenAI-compatible HTTP layer: request validation, prompt building, JSON and server-sent-event answers.

Routes: ``POST /v1/completions``, ``POST /v1/chat/completions`` (``stream: true`` answers as SSE chunks in
OpenAI's format, ending with ``data: [DONE]``), ``GET /v1/models``, ``GET /health``. Every generation answer
carries ``X-Forgetlab-Flagged: true|false`` (was any prompt of the request flagged by the guard's
classifier); the forget content itself is never echoed. Every error is an OpenAI-style JSON body
``{"error": {"message", "type", "param", "code"}}`` with a 4xx/5xx status, and the server keeps serving.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .engine import ServeEngine
from .types import Delta, Done, Event, Failed, Flagged, GenRequest

FLAG_HEADER = "X-Forgetlab-Flagged"


class ApiError(Exception):
    """An error answered as OpenAI's JSON error body with ``status``."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status)


# ---------------------------------------------------------------- request schemas (strict: "5" is not 5)

_Stop = str | Annotated[list[str], Field(max_length=4)] | None


class _StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    include_usage: bool = False


class _Common(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    model: str | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    n: Annotated[int, Field(ge=1)] | None = None
    stream: bool | None = None
    stream_options: _StreamOptions | None = None
    stop: _Stop = None
    seed: int | None = None


class CompletionBody(_Common):
    """``/v1/completions``: ``prompt`` is a string, a list of strings, token ids or lists of token ids."""

    prompt: str | list[str] | list[int] | list[list[int]]


class _TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    type: Literal["text"]
    text: str


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[_TextPart] | None = None


class ChatBody(_Common):
    """``/v1/chat/completions``: ``messages`` with string (or text-part) content."""

    messages: Annotated[list[_Message], Field(min_length=1)]


def _validation_error(exc: ValidationError) -> ApiError:
    err = exc.errors()[0]
    param = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-", "list[", "str")))
    msg = err["msg"] if err["type"] != "missing" else "field required"
    return ApiError(400, f"{param or 'body'}: {msg}", param=param or None,
                    code="missing_field" if err["type"] == "missing" else "invalid_value")


# ---------------------------------------------------------------- helpers


async def _read_json(request: Request, limit: int) -> dict[str, Any]:
    """Read the body (refusing more than ``limit`` bytes, declared or actual) and parse a JSON object."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body of {declared} bytes is larger than the limit of {limit} bytes",
                       code="body_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body is larger than the limit of {limit} bytes", code="body_too_large")
        chunks.append(chunk)
    try:
        data = json.loads(b"".join(chunks))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"request body is not valid JSON ({getattr(exc, 'msg', 'bad encoding')})",
                       code="invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "request body must be a JSON object", code="invalid_json")
    return data


def _message_text(msg: _Message) -> str:
    if msg.content is None:
        return ""
    if isinstance(msg.content, str):
        return msg.content
    return "".join(part.text for part in msg.content)


class _Plan:
    """A validated request turned into backend requests plus what the answer needs."""

    def __init__(self, reqs: list[GenRequest], n: int, stream: bool, include_usage: bool) -> None:
        self.reqs, self.n, self.stream, self.include_usage = reqs, n, stream, include_usage
        self.choices = len(reqs) * n
        self.prompt_tokens = sum(len(r.prompt_ids) for r in reqs)


def _plan(engine: ServeEngine, body: _Common, prompts: list[tuple[list[int], str]],
          default_max_tokens: int) -> _Plan:
    """Check limits and build one :class:`GenRequest` per prompt."""
    limits = engine.limits
    n = body.n or 1
    if n > limits.max_n:
        raise ApiError(400, f"n={n} is larger than the limit of {limits.max_n}", param="n")
    max_tokens = body.max_completion_tokens or body.max_tokens or min(default_max_tokens, limits.max_tokens)
    if max_tokens > limits.max_tokens:
        raise ApiError(400, f"max_tokens={max_tokens} is larger than the limit of {limits.max_tokens}",
                       param="max_tokens", code="max_tokens_exceeded")
    if n * len(prompts) > limits.max_batch_size:
        raise ApiError(400, f"{len(prompts)} prompt(s) x n={n} choices exceed the server's batch size "
                       f"of {limits.max_batch_size}", param="n")
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
        ctx = engine.context_length
        if ctx is not None and len(ids) + max_tokens > ctx:
            raise ApiError(400, f"prompt ({len(ids)} tokens) + max_tokens ({max_tokens}) exceed the model's "
                           f"context length of {ctx}", param="max_tokens", code="context_length_exceeded")
        reqs.append(GenRequest(prompt_ids=ids, classify_text=text, max_tokens=max_tokens,
                               temperature=temperature, top_p=1.0 if body.top_p is None else body.top_p,
                               stop=stops, seed=body.seed, n=n, index_base=len(reqs) * n))
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return _Plan(reqs, n, bool(body.stream), include_usage)


def _completion_prompts(engine: ServeEngine, body: CompletionBody) -> list[tuple[list[int], str]]:
    tok = engine.tokenizer
    prompt = body.prompt
    if isinstance(prompt, str):
        prompt = [prompt]
    if prompt and isinstance(prompt[0], int):
        prompt = [prompt]
    if not prompt:
        raise ApiError(400, "prompt must not be empty", param="prompt")
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
    tok = engine.tokenizer
    if not getattr(tok, "chat_template", None):
        raise ApiError(400, "this model has no chat template; use /v1/completions", param="messages")
    messages = [{"role": m.role, "content": _message_text(m)} for m in body.messages]
    try:
        text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    except Exception as exc:  # jinja templates raise their own errors for unsupported conversations
        raise ApiError(400, f"the chat template rejected these messages ({type(exc).__name__}: {exc})",
                       param="messages") from None
    ids = list(tok(text, add_special_tokens=False)["input_ids"])
    # the classifier sees what the user wrote (every message), not the template's markup
    return [(ids, "\n".join(m["content"] for m in messages))]


async def _await_flags(events: Any, count: int) -> tuple[bool, list[Event]]:
    """Wait for ``count`` Flagged events; keep other events that arrive meanwhile, in order."""
    flagged, seen, early = False, 0, []
    while seen < count:
        ev = await events.get()
        if isinstance(ev, Flagged):
            flagged, seen = flagged or ev.flagged, seen + 1
        elif isinstance(ev, Failed):
            raise ApiError(500, ev.message, type="server_error")
        else:
            early.append(ev)
    return flagged, early


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


def _usage(plan: _Plan, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": plan.prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": plan.prompt_tokens + completion_tokens}


def _sse(obj: Any) -> str:
    return f"data: {json.dumps(obj, separators=(',', ':'))}\n\n"


# ---------------------------------------------------------------- the app


async def _parse(engine: ServeEngine, request: Request, chat: bool) -> tuple[_Plan, bool]:
    """Read and validate a generation request into a plan (limits checked, prompts tokenized)."""
    data = await _read_json(request, engine.limits.max_body_bytes)
    try:
        body = ChatBody.model_validate(data) if chat else CompletionBody.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc) from None
    if body.model is not None and body.model != engine.model_name:
        raise ApiError(404, f"model {body.model!r} does not exist; this server serves "
                       f"{engine.model_name!r}", param="model", code="model_not_found")
    prompts = _chat_prompt(engine, body) if chat else _completion_prompts(engine, body)
    return _plan(engine, body, prompts, default_max_tokens=engine.limits.max_tokens if chat else 16), chat


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


async def _collect(plan: _Plan, early: list[Event], events: Any) -> tuple[list[str], list[str | None], int]:
    """Texts, finish reasons and completion tokens of every choice (a non-streamed answer)."""
    texts = [""] * plan.choices
    reasons: list[str | None] = [None] * plan.choices
    used = 0
    async for ev in _events_after(early, events, plan.choices):
        if isinstance(ev, Failed):
            raise ApiError(500, ev.message, type="server_error")
        if isinstance(ev, Delta):
            texts[ev.index] += ev.text
        elif isinstance(ev, Done):
            reasons[ev.index] = ev.finish_reason
            used += ev.completion_tokens
    return texts, reasons, used


def _answer(plan: _Plan, chat: bool, rid: str, created: int, model: str, texts: list[str],
            reasons: list[str | None], used: int) -> dict[str, Any]:
    """The JSON body of a non-streamed completion or chat completion."""
    pairs = enumerate(zip(texts, reasons, strict=True))
    if chat:
        choices = [{"index": i, "message": {"role": "assistant", "content": t}, "logprobs": None,
                    "finish_reason": r} for i, (t, r) in pairs]
    else:
        choices = [{"index": i, "text": t, "logprobs": None, "finish_reason": r} for i, (t, r) in pairs]
    return {"id": rid, "object": "chat.completion" if chat else "text_completion", "created": created,
            "model": model, "choices": choices, "usage": _usage(plan, used)}


async def _handle(engine: ServeEngine, request: Request, chat: bool) -> Any:
    """One generation request: plan, admit, submit, wait for the flags, then stream or collect the answer."""
    plan, chat = await _parse(engine, request, chat)
    slot = _Admission(engine, plan)
    try:
        events = engine.submit(plan.reqs)
        flagged, early = await _await_flags(events, len(plan.reqs))
    except BaseException:
        slot.release()
        raise
    headers = {FLAG_HEADER: "true" if flagged else "false"}
    rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
    created = int(time.time())
    if plan.stream:
        stream = _stream(plan, chat, rid, created, engine.model_name, early, events, slot.release)
        return StreamingResponse(stream, media_type="text/event-stream",
                                 headers={**headers, "Cache-Control": "no-cache"})
    try:
        texts, reasons, used = await _collect(plan, early, events)
    finally:
        slot.release()
    return JSONResponse(_answer(plan, chat, rid, created, engine.model_name, texts, reasons, used),
                        headers=headers)


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


def create_app(engine: ServeEngine) -> FastAPI:
    """Build the FastAPI app around ``engine`` (one app per engine)."""
    app = FastAPI(title="forgetlab ECO server", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine = engine
    _error_handlers(app)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "in_flight": engine.in_flight, "backend": engine.backend.name}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": engine.model_name, "object": "model", "created": 0,
                                            "owned_by": "forgetlab"}]}

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        return await _handle(engine, request, chat=False)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        return await _handle(engine, request, chat=True)

    return app


async def _stream(plan: _Plan, chat: bool, rid: str, created: int, model: str, early: list[Event],
                  events: Any, release: Any) -> AsyncIterator[str]:
    """SSE chunks in OpenAI's format: role first (chat), text deltas, a finish chunk per choice, usage, [DONE]."""
    obj = "chat.completion.chunk" if chat else "text_completion"
    base = {"id": rid, "object": obj, "created": created, "model": model}

    def chunk(index: int, text: str | None, finish: str | None, role: bool = False) -> dict[str, Any]:
        if chat:
            delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else (
                {"content": text} if text is not None else {})
            choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        else:
            choice = {"index": index, "text": text or "", "logprobs": None, "finish_reason": finish}
        return {**base, "choices": [choice]}

    try:
        if chat:
            for i in range(plan.choices):
                yield _sse(chunk(i, None, None, role=True))
        used = 0
        async for ev in _events_after(early, events, plan.choices):
            if isinstance(ev, Failed):
                yield _sse({"error": {"message": ev.message, "type": "server_error", "param": None,
                                      "code": None}})
                break
            if isinstance(ev, Delta):
                yield _sse(chunk(ev.index, ev.text, None))
            elif isinstance(ev, Done):
                used += ev.completion_tokens
                yield _sse(chunk(ev.index, None, ev.finish_reason))
        if plan.include_usage:
            yield _sse({**base, "choices": [], "usage": _usage(plan, used)})
        yield "data: [DONE]\n\n"
    finally:
        release()

"""The request bodies the ECO server accepts, and the OpenAI fields it refuses.

Bodies are strict pydantic models (``"5"`` is not ``5``). A field the server does not implement is refused with
a 400 naming it, never silently ignored: a client that sends ``tools`` or ``response_format`` expects a
behaviour it would not get. A refused field sent with its no-op value (``tools: []``, ``presence_penalty: 0``,
``response_format: {"type": "text"}``) is accepted, since it asks for nothing. A few fields that change nothing
about the answer (``user``, ``metadata``, ``store``, ``service_tier``, ``parallel_tool_calls``) are accepted
and ignored, as OpenAI's own server does with them. Any other unknown field is refused, as OpenAI does
("Unrecognized request argument").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

_Stop = str | Annotated[list[str], Field(max_length=4)] | None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class StreamOptions(_Strict):
    include_usage: bool = False


class CommonBody(_Strict):
    """Fields both generation endpoints take."""

    model: str | None = None
    max_tokens: Annotated[int, Field(ge=0)] | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    n: Annotated[int, Field(ge=1)] | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    stop: _Stop = None
    seed: int | None = None


class CompletionBody(CommonBody):
    """``/v1/completions``: ``prompt`` is a string, a list of strings, token ids or lists of token ids;
    ``logprobs`` (alternatives per token) and ``echo`` (return and score the prompt too) as in OpenAI's legacy
    completions (what lm-evaluation-harness's ``local-completions`` scores text with)."""

    prompt: str | list[str] | list[int] | list[list[int]]
    logprobs: Annotated[int, Field(ge=0)] | None = None
    echo: bool | None = None


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class Message(_Strict):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None


class ChatBody(CommonBody):
    """``/v1/chat/completions``: ``messages`` with string (or text-part) content; ``logprobs`` (bool) and
    ``top_logprobs`` as in OpenAI's chat API."""

    messages: Annotated[list[Message], Field(min_length=1)]
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Field(ge=0)] | None = None


def _none_or(*noop: Any) -> Callable[[Any], bool]:
    return lambda v: v is None or any(v == x for x in noop)


REFUSED_COMMON: dict[str, Callable[[Any], bool]] = {
    "presence_penalty": _none_or(0, 0.0), "frequency_penalty": _none_or(0, 0.0), "logit_bias": _none_or({}),
}
"""Fields the server does not implement, each with the test of its no-op value (accepted)."""
REFUSED: dict[str, dict[str, Callable[[Any], bool]]] = {
    "completions": {**REFUSED_COMMON, "suffix": _none_or(""), "best_of": _none_or(1)},
    "chat": {**REFUSED_COMMON, "tools": _none_or([]), "tool_choice": _none_or("none"),
             "functions": _none_or([]), "function_call": _none_or("none"),
             "response_format": _none_or({"type": "text"}), "modalities": _none_or(["text"]),
             "audio": _none_or(), "prediction": _none_or(), "reasoning_effort": _none_or(),
             "web_search_options": _none_or(), "echo": _none_or(False)},
}
IGNORED = frozenset({"user", "metadata", "store", "service_tier", "parallel_tool_calls"})
"""Fields accepted and ignored: they change nothing about the answer."""
BODIES: dict[str, type[CommonBody]] = {"completions": CompletionBody, "chat": ChatBody}


class FieldError(Exception):
    """A refused or invalid field: ``param`` names it, ``code`` is OpenAI-style."""

    def __init__(self, message: str, param: str | None, code: str) -> None:
        super().__init__(message)
        self.message, self.param, self.code = message, param, code


def parse_body(kind: str, data: dict[str, Any]) -> CommonBody:
    """Validate a decoded JSON object as the body of endpoint ``kind`` (``completions`` or ``chat``).

    Raises :class:`FieldError` naming the first refused, unknown or invalid field.
    """
    cls, refused = BODIES[kind], REFUSED[kind]
    try:
        body = cls.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        param = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-", "list[", "str")))
        msg = err["msg"] if err["type"] != "missing" else "field required"
        raise FieldError(f"{param or 'body'}: {msg}", param or None,
                         "missing_field" if err["type"] == "missing" else "invalid_value") from None
    for key, value in data.items():
        if key in refused:
            if not refused[key](value):
                raise FieldError(f"{key}: not supported by this server", key, "unsupported_parameter")
        elif key not in cls.model_fields and key not in IGNORED:
            raise FieldError(f"{key}: unrecognized request argument", key, "unknown_parameter")
    return body


def openapi_schema(kind: str) -> dict[str, Any]:
    """The JSON schema of endpoint ``kind``'s body, for the server's OpenAPI description (refused fields are
    left out: the description lists what the server does)."""
    schema = BODIES[kind].model_json_schema(ref_template="#/components/schemas/{model}")
    schema["additionalProperties"] = False
    return schema

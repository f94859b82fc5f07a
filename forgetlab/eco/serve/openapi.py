"""The ECO server's OpenAPI description (``GET /openapi.json``): what clients and schema-driven fuzzers read.

The generation routes read their bodies themselves (to enforce the byte limit before parsing), so FastAPI
cannot infer them; this module adds each route's request body (the pydantic models of
:mod:`~forgetlab.eco.serve.schemas`), its answers (JSON or an event stream) and every error status it can
answer, with OpenAI's error body. With an API key, the ``/v1`` routes declare bearer authentication and 401.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from .schemas import BODIES, openapi_schema

ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["message", "type"],
    "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                   "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}}}}
GENERATION_ERRORS = {"400": "bad request: a refused, unknown or invalid field, or a limit exceeded",
                     "404": "the model named is not served here", "413": "the body is larger than the limit",
                     "429": "too many requests in flight", "500": "generation failed"}
ROUTES = {"/v1/completions": "completions", "/v1/chat/completions": "chat"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _generation(kind: str, secured: bool) -> dict[str, Any]:
    """The request body and responses of one generation route."""
    answer = {"type": "object", "required": ["id", "object", "created", "model", "choices"],
              "properties": {"choices": {"type": "array"}, "usage": {"type": "object"}}}
    ok = _json(answer, "the answer (with stream: true, an event stream of chunks ending with data: [DONE])")
    ok["content"]["text/event-stream"] = {"schema": {"type": "string"}}
    responses = {"200": ok, **{code: _json({"$ref": "#/components/schemas/Error"}, text)
                               for code, text in GENERATION_ERRORS.items()}}
    if secured:
        responses["401"] = _json({"$ref": "#/components/schemas/Error"}, "missing or incorrect API key")
    name = BODIES[kind].__name__
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{name}"}}}}, "responses": responses}


def describe(app: FastAPI, secured: bool) -> None:
    """Give ``app`` its full OpenAPI description (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=_version(), routes=app.routes,
                             description="OpenAI-compatible API of a model guarded by ECO (forgetlab).")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Error"] = ERROR
        for kind, cls in BODIES.items():
            body = openapi_schema(kind)
            components.update(body.pop("$defs", {}))
            components[cls.__name__] = body
        for path, kind in ROUTES.items():
            schema["paths"][path]["post"].update(_generation(kind, secured))
        schema["paths"]["/metrics"]["get"]["responses"] = {"200": {
            "description": "Prometheus metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}}
        if secured:
            schema["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            for path, item in schema["paths"].items():
                if path.startswith("/v1"):
                    for op in item.values():
                        op["security"] = [{"bearer": []}]
                        op["responses"].setdefault("401", _json({"$ref": "#/components/schemas/Error"},
                                                                "missing or incorrect API key"))
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _version() -> str:
    from ... import __version__

    return __version__

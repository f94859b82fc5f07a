"""Bad requests get 4xx with an OpenAI-style JSON error body, and the server keeps serving."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from forgetlab.eco.serve.backends import classify_batch
from forgetlab.eco.serve.engine import ServeEngine
from forgetlab.eco.serve.server import serve_in_thread
from forgetlab.eco.serve.types import Delta, Done, ServeLimits
from forgetlab.errors import BadInput

LIMITS = ServeLimits(max_prompt_tokens=32, max_tokens=16, max_body_bytes=4096, max_n=2)


@pytest.fixture(scope="module")
def http(guard):
    engine = ServeEngine(guard, "transformers", LIMITS, model_name="m")
    with serve_in_thread(engine) as srv, httpx.Client(base_url=srv.url, timeout=60) as client:
        yield client


def _ok(http):
    r = http.post("/v1/completions", json={"prompt": "Paris is", "max_tokens": 2, "temperature": 0})
    assert r.status_code == 200, r.text
    assert http.get("/health").status_code == 200


BAD = [
    ("/v1/completions", b"{not json", 400, "invalid_json"),
    ("/v1/completions", b"\xff\xfe\x00", 400, "invalid_json"),
    ("/v1/completions", b"[1, 2]", 400, "invalid_json"),
    ("/v1/completions", b"{}", 400, "missing_field"),
    ("/v1/chat/completions", b'{"prompt": "hi"}', 400, "missing_field"),
    ("/v1/completions", b'{"prompt": 5}', 400, "invalid_value"),
    ("/v1/completions", b'{"prompt": "x", "max_tokens": "3"}', 400, "invalid_value"),
    ("/v1/completions", b'{"prompt": "x", "max_tokens": 0}', 400, "invalid_value"),
    ("/v1/completions", b'{"prompt": "x", "temperature": "hot"}', 400, "invalid_value"),
    ("/v1/completions", b'{"prompt": "x", "temperature": 3.5}', 400, "invalid_value"),
    ("/v1/completions", b'{"prompt": "x", "top_p": 0}', 400, "invalid_value"),
    ("/v1/completions", b'{"prompt": "x", "stream": "yes"}', 400, "invalid_value"),
    ("/v1/completions", b'{"prompt": "x", "stop": [1]}', 400, "invalid_value"),
    ("/v1/completions", b'{"prompt": ""}', 400, None),
    ("/v1/completions", b'{"prompt": [999999]}', 400, None),
    ("/v1/completions", b'{"prompt": "x", "n": 3}', 400, None),
    ("/v1/completions", b'{"prompt": "x", "max_tokens": 17}', 400, "max_tokens_exceeded"),
    ("/v1/completions", b'{"prompt": "x", "model": "gpt-4"}', 404, "model_not_found"),
    ("/v1/chat/completions", b'{"messages": []}', 400, "invalid_value"),
    ("/v1/chat/completions", b'{"messages": [{"role": "wizard", "content": "hi"}]}', 400, "invalid_value"),
    ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": 7}]}', 400, "invalid_value"),
    ("/v1/chat/completions", b'{"messages": "hi"}', 400, "invalid_value"),
]


@pytest.mark.parametrize(("path", "body", "status", "code"), BAD)
def test_bad_request_gets_json_error_and_server_keeps_serving(http, path, body, status, code):
    r = http.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    if code is not None:
        assert err["code"] == code
    _ok(http)


def test_too_many_prompt_tokens(http):
    r = http.post("/v1/completions", json={"prompt": "blue " * 200})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "context_length_exceeded"
    assert "32" in r.json()["error"]["message"]
    r = http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "red " * 100}]})
    assert r.json()["error"]["code"] == "context_length_exceeded"
    _ok(http)


def test_oversized_bodies_declared_or_chunked(http):
    big = b'{"prompt": "' + b"a" * 10_000 + b'"}'
    r = http.post("/v1/completions", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    _ok(http)

    def chunks():  # no Content-Length: the server must count while reading
        for _ in range(10):
            yield b" " * 1000

    r = http.post("/v1/completions", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    _ok(http)


def test_deeply_nested_or_undecodable_bodies_are_400(http):
    """Within the body limit (4096 bytes here): nested 2,000 deep (Python's JSON parser gives up), not UTF-8."""
    for body in (b'{"prompt": ' + b"[" * 2000 + b"]" * 2000 + b"}", b"[" * 2000 + b"]" * 2000,
                 b'{"prompt": "caf\xe9"}'):
        r = http.post("/v1/completions", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json", r.text
    _ok(http)


def test_a_huge_prompt_is_refused_by_its_length_without_blocking_other_clients(guard):
    """A 900 KB prompt is refused before any tokenizing, and /health answers meanwhile."""
    engine = ServeEngine(guard, "transformers", ServeLimits(max_prompt_tokens=256), model_name="m")
    assert engine.ahead is None  # classify_ahead="auto" with the model on this CPU: the batch worker classifies
    prompt = "word " * 180_000
    with serve_in_thread(engine) as srv, httpx.Client(base_url=srv.url, timeout=60) as http:
        def huge(_):
            t0 = time.perf_counter()
            r = http.post("/v1/completions", json={"prompt": prompt})
            return r, time.perf_counter() - t0

        with ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(huge, range(3)))
            health = [http.get("/health") for _ in range(5)]
        for r, seconds in answers:
            assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"
            assert "characters" in r.json()["error"]["message"] and seconds < 5
        assert all(h.status_code == 200 for h in health)


def test_prompts_are_tokenized_off_the_event_loop(guard, monkeypatch):
    """Tokenizing (of a prompt within the limits, which may still take long) never runs on the event loop's
    thread, where it would hold up every other client and /health."""
    import asyncio

    import forgetlab.eco.serve.http as http_mod

    where, real = [], http_mod._completion_prompts

    def spy(engine, body):
        try:
            asyncio.get_running_loop()
            where.append("event loop")
        except RuntimeError:
            where.append("another thread")
        return real(engine, body)

    monkeypatch.setattr(http_mod, "_completion_prompts", spy)
    engine = ServeEngine(guard, "transformers", LIMITS, model_name="m")
    with serve_in_thread(engine) as srv, httpx.Client(base_url=srv.url, timeout=60) as client:
        _ok(client)
    assert where == ["another thread"]


def test_unknown_routes_and_methods(http):
    assert http.get("/v1/nothing").status_code == 404
    r = http.get("/v1/completions")
    assert r.status_code == 405 and "error" in r.json()
    _ok(http)


class _GateBackend:
    """A backend that holds every batch until ``gate`` is set, and fails prompts containing 'boom'."""

    name = "gate"

    def __init__(self, guard):
        self.guard, self.gate = guard, threading.Event()

    def run_batch(self, requests):
        classify_batch(self.guard, requests)
        self.gate.wait(30)
        if any("boom" in r.classify_text for r in requests):
            raise RuntimeError("backend exploded")
        for r in requests:
            r.emit(Delta(r.index_base, "ok"))
            r.emit(Done(r.index_base, "stop", 1))


def test_concurrency_limit_answers_429_then_recovers(guard):
    backend = _GateBackend(guard)
    engine = ServeEngine(guard, backend, ServeLimits(max_concurrent=2), model_name="m")
    with serve_in_thread(engine) as srv, httpx.Client(base_url=srv.url, timeout=60) as http:
        def ask(_):
            return http.post("/v1/completions", json={"prompt": "Paris is"})

        with ThreadPoolExecutor(2) as pool:
            held = [pool.submit(ask, i) for i in range(2)]
            deadline = time.monotonic() + 10
            while engine.in_flight < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            extra = ask(3)
            assert extra.status_code == 429
            assert extra.json()["error"]["type"] == "rate_limit_error"
            backend.gate.set()
            assert [f.result().status_code for f in held] == [200, 200]
        assert engine.in_flight == 0
        assert ask(4).json()["choices"][0]["text"] == "ok"


def test_backend_failure_is_a_500_json_and_the_worker_survives(guard):
    backend = _GateBackend(guard)
    backend.gate.set()
    engine = ServeEngine(guard, backend, ServeLimits(), model_name="m")
    with serve_in_thread(engine) as srv, httpx.Client(base_url=srv.url, timeout=60) as http:
        r = http.post("/v1/completions", json={"prompt": "boom"})
        assert r.status_code == 500 and r.json()["error"]["type"] == "server_error"
        assert "boom" not in r.json()["error"]["message"]
        # streaming: the headers (200, flag) went out before generation failed, so the failure is an SSE
        # error event, then [DONE]
        with http.stream("POST", "/v1/completions", json={"prompt": "boom", "stream": True}) as s:
            lines = [ln for ln in s.iter_lines() if ln]
        assert '"type":"server_error"' in lines[0] and lines[-1] == "data: [DONE]"
        assert http.post("/v1/completions", json={"prompt": "fine"}).status_code == 200
        assert engine.in_flight == 0


@pytest.mark.parametrize(("field", "value"), [("max_tokens", 0), ("max_concurrent", -1), ("max_n", 1.5),
                                               ("batch_window_ms", -1.0)])
def test_bad_limits_are_bad_input(field, value):
    with pytest.raises(BadInput, match=field):
        ServeLimits(**{field: value})


def test_unknown_backend_lists_known(guard):
    with pytest.raises(BadInput, match="transformers, vllm"):
        ServeEngine(guard, "tgi")

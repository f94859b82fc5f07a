"""Schema-driven fuzzing of the ECO server from its own OpenAPI description (schemathesis, tests/eco/serve/
fuzz_http.py): requests that fit the description and requests that break it, against a live loopback server;
no answer is a 5xx, every answer conforms to the description, and the server is healthy afterwards. `make test`
runs a fast profile (FORGETLAB_FUZZ_HTTP_EXAMPLES per operation and mode, default 5); `benchmarks/fuzz.py`
the long one."""

from __future__ import annotations

import os

import httpx
import pytest

from forgetlab.eco.serve.engine import ServeEngine
from forgetlab.eco.serve.server import serve_in_thread
from forgetlab.eco.serve.types import ServeLimits

pytest.importorskip("schemathesis", reason="needs schemathesis (the dev extra)")
from fuzz_http import fuzz_server

EXAMPLES = int(os.environ.get("FORGETLAB_FUZZ_HTTP_EXAMPLES", "5"))
KEY = "fuzz-key"
LIMITS = ServeLimits(max_tokens=8, max_prompt_tokens=64, max_n=2, max_batch_size=4, max_body_bytes=20_000)


@pytest.fixture(scope="module")
def served(guard):
    with serve_in_thread(ServeEngine(guard, "transformers", LIMITS, model_name="fuzz"), api_key=KEY) as srv:
        yield srv


def test_no_5xx_and_answers_match_the_description(served):
    statuses: list[int] = []

    def record(label, body, response, broken):
        statuses.append(response.status_code)
        if broken is not None:
            raise broken

    fuzz_server(served.url, EXAMPLES, {"Authorization": f"Bearer {KEY}"}, record,
                derandomize=not os.environ.get("FORGETLAB_FUZZ_RANDOM"))
    assert len(statuses) >= EXAMPLES and any(s == 200 for s in statuses) and any(400 <= s < 500 for s in statuses)


def test_the_server_is_healthy_after_the_fuzzing(served):
    with httpx.Client(base_url=served.url, timeout=60, headers={"Authorization": f"Bearer {KEY}"}) as http:
        assert http.get("/health").json()["status"] == "ok"
        r = http.post("/v1/completions", json={"prompt": "Paris is", "max_tokens": 2, "temperature": 0})
        assert r.status_code == 200 and r.json()["choices"][0]["finish_reason"] in ("length", "stop")
        assert served.engine.in_flight == 0 and served.engine.batcher.depth() == 0


def test_the_description_is_valid_openapi(served):
    """/openapi.json is served (it once failed: the version was imported from beyond the package) and
    describes the bodies the generation routes read themselves."""
    r = httpx.get(served.url + "/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    assert spec["openapi"].startswith("3.") and spec["info"]["version"]
    body = spec["paths"]["/v1/completions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/CompletionBody"}
    assert "prompt" in spec["components"]["schemas"]["CompletionBody"]["required"]
    assert spec["paths"]["/v1/models"]["get"]["security"] == [{"bearer": []}]
    assert {"400", "401", "413", "429"} <= set(spec["paths"]["/v1/chat/completions"]["post"]["responses"])

"""The live server over loopback HTTP: OpenAI shapes, greedy equality with the base model, streaming, flags."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from serve_helpers import FORGET_WORD, base_greedy

from forgetlab.eco.serve.engine import ServeEngine
from forgetlab.eco.serve.http import FLAG_HEADER
from forgetlab.eco.serve.server import serve_in_thread
from forgetlab.eco.serve.types import ServeLimits

MODEL = "tiny-guarded"
PROMPTS = ["The quick brown fox", "What is the capital of France?", "Who wrote the book?",
           "Paris is", "The author was born in London and likes red, blue"]


@pytest.fixture(scope="module")
def server(guard):
    engine = ServeEngine(guard, "transformers", ServeLimits(max_tokens=64, max_prompt_tokens=256),
                         model_name=MODEL)
    with serve_in_thread(engine) as srv:
        yield srv


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def oai(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)


def test_health_and_models(http, oai):
    assert http.get("/health").json()["status"] == "ok"
    assert [m.id for m in oai.models.list().data] == [MODEL]


def test_unflagged_completions_equal_base_greedy(http, tiny_model, tiny_tokenizer):
    for prompt in PROMPTS:
        r = http.post("/v1/completions", json={"model": MODEL, "prompt": prompt, "max_tokens": 12,
                                               "temperature": 0})
        assert r.status_code == 200, r.text
        assert r.headers[FLAG_HEADER] == "false"
        body = r.json()
        assert body["object"] == "text_completion" and body["model"] == MODEL
        ids = tiny_tokenizer(prompt)["input_ids"]
        assert body["choices"][0]["text"] == base_greedy(tiny_model, tiny_tokenizer, ids, 12)
        assert body["usage"] == {"prompt_tokens": len(ids), "completion_tokens": 12, "total_tokens": len(ids) + 12}


def test_concurrent_requests_are_batched_and_still_equal_base(server, http, tiny_model, tiny_tokenizer):
    prompts = PROMPTS * 3
    before = server.engine.batcher.batches

    def ask(p):
        r = http.post("/v1/completions", json={"prompt": p, "max_tokens": 8, "temperature": 0})
        return r.status_code, r.headers[FLAG_HEADER], r.json()["choices"][0]["text"]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, prompts))
    batches = server.engine.batcher.batches - before
    assert batches < len(prompts), "concurrent requests should share generate calls"
    for p, (status, flag, text) in zip(prompts, answers, strict=True):
        assert status == 200 and flag == "false"
        assert text == base_greedy(tiny_model, tiny_tokenizer, tiny_tokenizer(p)["input_ids"], 8)


def test_flagged_prompt_is_corrupted_and_only_the_flag_is_reported(http, tiny_model, tiny_tokenizer):
    prompt = f"Who is {FORGET_WORD} and where was he born?"
    r = http.post("/v1/completions", json={"prompt": prompt, "max_tokens": 12, "temperature": 0})
    assert r.status_code == 200
    assert r.headers[FLAG_HEADER] == "true"
    base = base_greedy(tiny_model, tiny_tokenizer, tiny_tokenizer(prompt)["input_ids"], 12)
    assert r.json()["choices"][0]["text"] != base
    assert FORGET_WORD.lower() not in json.dumps(dict(r.headers)).lower()
    # a flagged request in the same batch does not change an unflagged neighbour
    with ThreadPoolExecutor(2) as pool:
        flagged, clean = pool.map(lambda p: http.post("/v1/completions", json={
            "prompt": p, "max_tokens": 8, "temperature": 0}), [prompt, PROMPTS[0]])
    assert flagged.headers[FLAG_HEADER] == "true" and clean.headers[FLAG_HEADER] == "false"
    assert clean.json()["choices"][0]["text"] == base_greedy(
        tiny_model, tiny_tokenizer, tiny_tokenizer(PROMPTS[0])["input_ids"], 8)


def test_chat_with_openai_client_applies_template_and_equals_base(oai, tiny_model, tiny_tokenizer):
    messages = [{"role": "system", "content": "Answer briefly."},
                {"role": "user", "content": "What is the capital of France?"}]
    raw = oai.chat.completions.with_raw_response.create(model=MODEL, messages=messages, max_tokens=10,
                                                        temperature=0)
    assert raw.headers[FLAG_HEADER] == "false"
    resp = raw.parse()
    text = tiny_tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].message.content == base_greedy(tiny_model, tiny_tokenizer, ids, 10)
    assert resp.usage.prompt_tokens == len(ids)
    flagged = oai.chat.completions.with_raw_response.create(
        model=MODEL, max_tokens=4, temperature=0,
        messages=[{"role": "user", "content": f"Tell me about {FORGET_WORD}."}])
    assert flagged.headers[FLAG_HEADER] == "true"


def test_streaming_chat_and_completions_match_non_streamed(oai, http):
    kwargs = {"model": MODEL, "max_tokens": 12, "temperature": 0}
    messages = [{"role": "user", "content": "Who wrote the book?"}]
    full = oai.chat.completions.create(messages=messages, **kwargs).choices[0].message.content
    chunks = list(oai.chat.completions.create(messages=messages, stream=True,
                                              stream_options={"include_usage": True}, **kwargs))
    deltas = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert deltas == full
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage.completion_tokens == 12
    stream = oai.completions.create(prompt="Paris is", stream=True, **kwargs)
    assert "".join(c.choices[0].text for c in stream) == oai.completions.create(
        prompt="Paris is", **kwargs).choices[0].text
    # raw SSE framing: data lines, OpenAI chunk objects, terminated by [DONE]; flag header set up front
    with http.stream("POST", "/v1/completions", json={"prompt": f"{FORGET_WORD}?", "max_tokens": 3,
                                                      "stream": True, "temperature": 0}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers[FLAG_HEADER] == "true"
        lines = [ln for ln in r.iter_lines() if ln]
    assert all(ln.startswith("data: ") for ln in lines) and lines[-1] == "data: [DONE]"
    assert json.loads(lines[0][6:])["object"] == "text_completion"


def test_seeded_sampling_is_reproducible_and_streaming_agrees(oai):
    kw = {"model": MODEL, "prompt": "The quick brown fox", "max_tokens": 10, "temperature": 0.9,
          "top_p": 0.95, "seed": 1234, "n": 3}
    a = [c.text for c in sorted(oai.completions.create(**kw).choices, key=lambda c: c.index)]
    b = [c.text for c in sorted(oai.completions.create(**kw).choices, key=lambda c: c.index)]
    assert a == b and len(set(a)) > 1  # same seed -> same draws; choices use different streams
    streamed = ["", "", ""]
    for chunk in oai.completions.create(stream=True, **kw):
        for ch in chunk.choices:
            streamed[ch.index] += ch.text
    assert streamed == a


def test_stop_strings_cut_text_and_never_leak_in_stream(oai):
    kw = {"model": MODEL, "prompt": "What is the capital of France?", "max_tokens": 20, "temperature": 0}
    full = oai.completions.create(**kw).choices[0].text
    stop = full[5:8]
    assert stop and stop in full
    cut = oai.completions.create(stop=[stop, "zzzz-never"], **kw).choices[0]
    assert cut.text == full[: full.index(stop)]
    assert cut.finish_reason == "stop"
    streamed = "".join(c.choices[0].text for c in oai.completions.create(stop=stop, stream=True, **kw))
    assert streamed == cut.text


def test_list_prompts_and_token_id_prompts(http, tiny_model, tiny_tokenizer):
    ids = tiny_tokenizer("Paris is")["input_ids"]
    r = http.post("/v1/completions", json={"prompt": ["Paris is", "The quick brown fox"], "max_tokens": 6,
                                           "temperature": 0})
    choices = sorted(r.json()["choices"], key=lambda c: c["index"])
    assert [c["index"] for c in choices] == [0, 1]
    assert choices[0]["text"] == base_greedy(tiny_model, tiny_tokenizer, ids, 6)
    r2 = http.post("/v1/completions", json={"prompt": ids, "max_tokens": 6, "temperature": 0})
    assert r2.json()["choices"][0]["text"] == choices[0]["text"]

"""What clients use, through the official `openai` client: logprobs, echo, default max_tokens, refused fields,
the API key, and Prometheus metrics. Every log-prob is checked against the guard's own teacher-forced scorer."""

from __future__ import annotations

import httpx
import numpy as np
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families
from serve_helpers import FORGET_WORD, save_tiny_guard

from forgetlab.eco.guard import EcoGuard
from forgetlab.eco.serve.engine import ServeEngine
from forgetlab.eco.serve.http import _max_tokens
from forgetlab.eco.serve.schemas import ChatBody
from forgetlab.eco.serve.server import serve_in_thread
from forgetlab.eco.serve.types import ServeLimits

MODEL = "tiny-guarded"
KEY = "sekret-key"
CTX = 48  # the small-context guard's model


@pytest.fixture(scope="module")
def server(guard):
    engine = ServeEngine(guard, "transformers", ServeLimits(max_tokens=64, max_prompt_tokens=256), model_name=MODEL)
    with serve_in_thread(engine, api_key=KEY) as srv:
        yield srv


@pytest.fixture(scope="module")
def oai(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0, timeout=60)


def _guard_scores(guard, prompt_ids, tokens, flagged, echo, top_k=0):
    """The guard's own scorer on prompt + tokens: what the server's log-probs must equal."""
    seq = list(prompt_ids) + list(tokens)
    s = guard.score_sequences([seq], [len(prompt_ids)], [flagged], starts=[1 if echo else len(prompt_ids)],
                              top_k=top_k)
    return s.logprobs[0], (s.top_logprobs[0] if top_k else None)


def test_completion_logprobs_equal_the_guards_scores_and_are_greedy(oai, guard):
    prompt = "The quick brown fox"
    resp = oai.completions.create(model=MODEL, prompt=prompt, max_tokens=5, temperature=0, logprobs=3)
    lp = resp.choices[0].logprobs
    ids = guard.tokenizer(prompt)["input_ids"]
    assert len(lp.tokens) == resp.usage.completion_tokens == 5
    assert "".join(lp.tokens) == resp.choices[0].text
    want, top = _guard_scores(guard, ids, _greedy_ids(guard, ids, 5), False, False, top_k=3)
    np.testing.assert_allclose(lp.token_logprobs, want, atol=1e-4)
    for chosen, alts, best in zip(lp.token_logprobs, lp.top_logprobs, top, strict=True):
        assert len(alts) in (3, 4) and abs(max(alts.values()) - chosen) < 1e-5  # greedy: the chosen is the top
        np.testing.assert_allclose(sorted(alts.values(), reverse=True)[:3], best, atol=1e-4)
    assert lp.text_offset == list(np.cumsum([0] + [len(t) for t in lp.tokens[:-1]]))


def _greedy_ids(guard, prompt_ids, n):
    """The unguarded greedy continuation's token ids (what the server generates for an unflagged prompt)."""
    import torch

    ids = torch.tensor([prompt_ids])
    with torch.no_grad():
        out = guard.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                   max_new_tokens=n, pad_token_id=guard.tokenizer.pad_token_id)
    return out[0, len(prompt_ids):].tolist()


@pytest.mark.parametrize("flagged", [False, True])
def test_echo_scores_the_prompt_with_the_whole_text_corrupted_when_flagged(oai, guard, base, flagged):
    prompt = f"Who is {FORGET_WORD} really" if flagged else "Paris is the capital of France"
    raw = oai.completions.with_raw_response.create(model=MODEL, prompt=prompt, max_tokens=0, echo=True,
                                                   logprobs=1, temperature=0)
    assert raw.headers["X-Forgetlab-Flagged"] == str(flagged).lower()
    resp = raw.parse()
    choice = resp.choices[0]
    ids = guard.tokenizer(prompt)["input_ids"]
    assert choice.text == prompt and resp.usage.completion_tokens == 0
    lp = choice.logprobs
    assert len(lp.tokens) == len(ids) and lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    want, _ = _guard_scores(guard, ids, [], flagged, True)
    np.testing.assert_allclose(lp.token_logprobs[1:], want, atol=1e-4)
    plain = base[0]
    from forgetlab.eco.scoring import continuation_logprobs, pack

    clean = continuation_logprobs(plain, pack([(ids[:1], ids[1:])], 0)).logprobs[0]
    assert np.allclose(lp.token_logprobs[1:], clean, atol=1e-4) != flagged  # corrupted exactly when flagged
    # lm-evaluation-harness's request: one generated token, read as token_logprobs[ctxlen:-1]; the generated token
    # is there even when it is the end of sequence
    one = oai.completions.create(model=MODEL, prompt=ids, max_tokens=1, echo=True, logprobs=1, temperature=0)
    assert len(one.choices[0].logprobs.token_logprobs) == len(ids) + 1
    np.testing.assert_allclose(one.choices[0].logprobs.token_logprobs[1:-1], want, atol=1e-4)


def test_chat_logprobs(oai):
    resp = oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Who wrote the book?"}],
                                       max_tokens=4, temperature=0, logprobs=True, top_logprobs=2)
    content = resp.choices[0].logprobs.content
    assert len(content) == resp.usage.completion_tokens == 4
    assert "".join(c.token for c in content) == resp.choices[0].message.content
    for c in content:
        assert len(c.top_logprobs) == 2 and abs(c.top_logprobs[0].logprob - c.logprob) < 1e-5
        assert bytes(c.bytes).decode("utf-8") == c.token
    stream = oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Who wrote the book?"}],
                                         max_tokens=4, temperature=0, logprobs=True, top_logprobs=2, stream=True)
    streamed = [e for ch in stream for c in ch.choices if c.logprobs for e in c.logprobs.content]
    assert [e.logprob for e in streamed] == [c.logprob for c in content]


def test_refused_fields_name_the_field_and_noop_values_pass(oai):
    messages = [{"role": "user", "content": "hi"}]
    cases = [({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
             ({"response_format": {"type": "json_object"}}, "response_format"),
             ({"logit_bias": {"5": 10}}, "logit_bias"), ({"presence_penalty": 0.5}, "presence_penalty"),
             ({"extra_body": {"top_k": 5}}, "top_k")]
    for kwargs, field in cases:
        with pytest.raises(openai.BadRequestError) as exc:
            oai.chat.completions.create(model=MODEL, messages=messages, max_tokens=2, **kwargs)
        assert exc.value.body["param"] == field and field in exc.value.body["message"]
    ok = oai.chat.completions.create(model=MODEL, messages=messages, max_tokens=2, presence_penalty=0,
                                     response_format={"type": "text"}, user="u1", extra_body={"tools": []})
    assert ok.choices[0].finish_reason in ("length", "stop")
    with pytest.raises(openai.BadRequestError) as exc:
        oai.completions.create(model=MODEL, prompt="x", max_tokens=2, suffix="tail")
    assert exc.value.body["param"] == "suffix"


def test_api_key_is_required_on_v1_only(server, oai):
    bad = openai.OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0, timeout=30)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    with pytest.raises(openai.AuthenticationError):
        bad.completions.create(model=MODEL, prompt="x", max_tokens=1)
    assert httpx.post(server.url + "/v1/completions", json={"prompt": "x"}).status_code == 401
    assert [m.id for m in oai.models.list().data] == [MODEL]
    assert httpx.get(server.url + "/health").status_code == 200
    assert httpx.get(server.url + "/metrics").status_code == 200


def _metrics(url):
    text = httpx.get(url + "/metrics").text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_metrics_count_requests_flags_latency_and_queue(server, oai):
    before = _metrics(server.url)
    oai.completions.create(model=MODEL, prompt="Paris is", max_tokens=2, temperature=0)
    oai.completions.create(model=MODEL, prompt=f"Tell me about {FORGET_WORD}", max_tokens=2, temperature=0)
    with pytest.raises(openai.BadRequestError):
        oai.completions.create(model=MODEL, prompt="x", max_tokens=1000)
    after = _metrics(server.url)

    def delta(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert delta("forgetlab_requests_total", endpoint="/v1/completions", status="200") == 2
    assert delta("forgetlab_requests_total", endpoint="/v1/completions", status="400") == 1
    assert delta("forgetlab_prompts_total") == 2 and delta("forgetlab_flagged_prompts_total") == 1
    assert delta("forgetlab_request_duration_seconds_count", endpoint="/v1/completions") == 3
    assert delta("forgetlab_completion_tokens_total") == 4
    assert after[("forgetlab_queue_depth", ())] == 0 and ("forgetlab_requests_in_flight", ()) in after
    assert delta("forgetlab_batch_duration_seconds_count") >= 2


@pytest.fixture(scope="module")
def small_ctx(tmp_path_factory):
    _, folder = save_tiny_guard(tmp_path_factory.mktemp("ctx"), max_positions=CTX)
    engine = ServeEngine(EcoGuard.from_pretrained(folder), "transformers",
                         ServeLimits(max_tokens=512, max_prompt_tokens=256), model_name=MODEL)
    with serve_in_thread(engine) as srv:
        yield srv, openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0, timeout=60)


def test_chat_without_max_tokens_gets_the_remaining_context(small_ctx):
    srv, client = small_ctx
    resp = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Who wrote it?"}],
                                          temperature=0)
    used = resp.usage.prompt_tokens + resp.usage.completion_tokens
    assert used == CTX if resp.choices[0].finish_reason == "length" else used < CTX
    engine = srv.engine
    body = ChatBody.model_validate({"messages": [{"role": "user", "content": "x"}]})
    assert _max_tokens(engine, body, True, False, 10) == CTX - 10
    comp = client.completions.create(model=MODEL, prompt="Paris is", temperature=0)
    assert comp.usage.completion_tokens <= 16  # completions keep OpenAI's default of 16
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "word " * 60}])
    assert exc.value.body["code"] == "context_length_exceeded"

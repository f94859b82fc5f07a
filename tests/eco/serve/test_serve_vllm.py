"""The vllm backend: flagged prompts travel as prompt embeddings, unflagged ones as token ids.

The remote mode is tested everywhere against a stand-in for ``vllm serve --enable-prompt-embeds``: a small
FastAPI app that decodes ``prompt_embeds`` exactly as vLLM does (base64 -> torch.load(weights_only=True)) and
generates greedily from the embeddings with the same tiny model. The in-process mode needs the vllm package
(and in practice a GPU) and is skipped where it is missing.
"""

from __future__ import annotations

import base64
import io

import httpx
import pytest
import torch
from fastapi import FastAPI, Request
from serve_helpers import FORGET_WORD, base_greedy

from forgetlab.eco.serve.engine import ServeEngine
from forgetlab.eco.serve.http import FLAG_HEADER
from forgetlab.eco.serve.server import serve_app_in_thread, serve_in_thread
from forgetlab.eco.serve.types import ServeLimits


def _fake_vllm(model, tokenizer, seen: list[dict]) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await request.json()
        seen.append(body)
        if "prompt_embeds" in body:
            emb = torch.load(io.BytesIO(base64.b64decode(body["prompt_embeds"])), weights_only=True)
            kwargs = {"inputs_embeds": emb[None]}
        else:
            kwargs = {"input_ids": torch.tensor([body["prompt"]])}
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.no_grad():
                out = model.generate(**kwargs, do_sample=False, max_new_tokens=body["max_tokens"],
                                     pad_token_id=tokenizer.pad_token_id)
        finally:
            torch.set_num_threads(threads)
        new = out[0, -body["max_tokens"]:] if "input_ids" in kwargs else out[0]
        return {"id": "x", "object": "text_completion", "model": body["model"], "choices": [
            {"index": 0, "text": tokenizer.decode(new, skip_special_tokens=True), "finish_reason": "length"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": body["max_tokens"], "total_tokens": 1}}

    return app


def test_remote_vllm_gets_embeds_for_flagged_and_ids_for_unflagged(guard, tiny_model, tiny_tokenizer):
    seen: list[dict] = []
    with serve_app_in_thread(_fake_vllm(tiny_model, tiny_tokenizer, seen)) as vllm_url:
        engine = ServeEngine(guard, "vllm", ServeLimits(), model_name="g",
                             backend_options={"url": vllm_url, "model": "base"})
        with serve_in_thread(engine) as srv, httpx.Client(base_url=srv.url, timeout=60) as http:
            clean = http.post("/v1/completions", json={"prompt": "Paris is", "max_tokens": 6, "temperature": 0})
            prompt = f"Who is {FORGET_WORD}?"
            flagged = http.post("/v1/completions", json={"prompt": prompt, "max_tokens": 6, "temperature": 0})
    assert clean.status_code == 200 and clean.headers[FLAG_HEADER] == "false"
    ids = tiny_tokenizer("Paris is")["input_ids"]
    assert seen[0]["prompt"] == ids and "prompt_embeds" not in seen[0]
    assert seen[0]["model"] == "base" and seen[0]["temperature"] == 0
    assert clean.json()["choices"][0]["text"] == base_greedy(tiny_model, tiny_tokenizer, ids, 6)

    assert flagged.headers[FLAG_HEADER] == "true"
    assert "prompt" not in seen[1]
    sent = torch.load(io.BytesIO(base64.b64decode(seen[1]["prompt_embeds"])), weights_only=True)
    fid = tiny_tokenizer(prompt)["input_ids"]
    assert torch.equal(sent, guard.prompt_embeddings(fid, flagged=True))
    assert not torch.equal(sent, guard.prompt_embeddings(fid, flagged=False))  # corrupted, not raw
    assert flagged.json()["choices"][0]["text"] != base_greedy(tiny_model, tiny_tokenizer, fid, 6)


def test_remote_vllm_failure_is_reported(guard):
    engine = ServeEngine(guard, "vllm", ServeLimits(), model_name="g",
                         backend_options={"url": "http://127.0.0.1:9", "model": "base", "timeout_s": 5})
    with serve_in_thread(engine) as srv, httpx.Client(base_url=srv.url, timeout=60) as http:
        r = http.post("/v1/completions", json={"prompt": "Paris is", "max_tokens": 2})
        assert r.status_code == 500 and r.json()["error"]["type"] == "server_error"
        assert http.get("/health").status_code == 200


def test_in_process_vllm(guard, tiny_model, tiny_tokenizer, tmp_path):
    pytest.importorskip("vllm")
    if not torch.cuda.is_available():
        pytest.skip("vLLM in process needs a GPU here")
    from forgetlab.testing.tiny_lm import save_lm

    path = save_lm(tiny_model, tiny_tokenizer, tmp_path / "base")
    engine = ServeEngine(guard, "vllm", ServeLimits(), model_name="g",
                         backend_options={"model": str(path), "gpu_memory_utilization": 0.2})
    with serve_in_thread(engine) as srv, httpx.Client(base_url=srv.url, timeout=300) as http:
        r = http.post("/v1/completions", json={"prompt": "Paris is", "max_tokens": 6, "temperature": 0})
        f = http.post("/v1/completions", json={"prompt": f"{FORGET_WORD}?", "max_tokens": 6, "temperature": 0})
    assert r.status_code == 200 and r.headers[FLAG_HEADER] == "false"
    assert f.status_code == 200 and f.headers[FLAG_HEADER] == "true"


def test_a_flagged_answer_from_vllm_keeps_its_first_space():
    """vLLM decodes a prompt_embeds request without its prompt tokens, so a SentencePiece tokenizer's first
    word comes back without its space ('sat on' for ' sat on'); the backend puts it back, and leaves text that
    has it (a byte-level tokenizer's) alone."""
    from forgetlab.eco.serve.backends.vllm import restore_leading_space
    from forgetlab.testing.tiny_lm import build_tokenizer

    for pretokenizer in ("metaspace", "byte-level"):
        tok = build_tokenizer(pretokenizer=pretokenizer, add_bos=True)
        prompt, ids = tok("the cat")["input_ids"], tok(" sat on", add_special_tokens=False)["input_ids"]
        alone = tok.decode(ids, skip_special_tokens=True)  # what vLLM returns without the prompt's tokens
        assert restore_leading_space(tok, prompt, ids, alone) == " sat on", pretokenizer
    assert restore_leading_space(tok, prompt, [], "") == ""

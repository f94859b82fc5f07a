"""Bounded load test of the ECO server on loopback: errors, p50/p99 latency and throughput, with and without guard.

Starts the real server (uvicorn in a thread, transformers backend) twice on the same tiny random-weight Llama:
once unguarded (``PlainModel``: nothing is flagged, no classifier runs) and once behind an ``EcoGuard`` with the
real all-MiniLM-L6-v2 prompt classifier (fitted here on synthetic forget/retain prompts) and a random-noise
corruption. Each run sends ``--requests`` requests with at most ``--concurrency`` in flight from an asyncio
httpx client in the same process: a rotation of completions, chat completions and streamed chat completions,
a quarter of them about the forget target, greedy, ``--max-tokens`` new tokens each. Latency is measured per
request to the last byte. Prints one JSON line per run and a ratio line; any error makes the exit code 1.

Usage: ``HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/serve_load.py [--requests 500] [--concurrency 16]
[--max-tokens 16] [--classifier minilm|keyword]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import time

import torch
from bench_prompts import prompt_sets


def build_guards(classifier: str, seed: int = 0):
    """(unguarded PlainModel, guarded EcoGuard) over the same tiny Llama, and a description of the setup."""
    from forgetlab.eco.guard import EcoGuard, GuardConfig, PlainModel
    from forgetlab.eco.hooks import hidden_size
    from forgetlab.testing.tiny_lm import build_tiny_lm, build_tokenizer, n_params

    forget, retain = prompt_sets()
    tok = build_tokenizer(corpus=[" ".join(forget + retain)], vocab_size=1024)
    tok.chat_template = ("{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n"
                         "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")
    model = build_tiny_lm("llama", tok, seed=seed, hidden=64, layers=2, heads=4, max_positions=1024)
    if classifier == "minilm":
        from forgetlab.eco.classify.prompt import PromptClassifier

        clf = PromptClassifier.fit(forget, retain, fpr=0.05, seed=seed)
    else:
        clf = _Keyword(["quint"])
    cfg = GuardConfig(corruption="rand_noise_first_n", strength=2.0, k=hidden_size(model), seed=seed)
    guard = EcoGuard(model, tok, clf, cfg)
    setup = {"model": f"tiny llama, {n_params(model)} params", "classifier": classifier,
             "corruption": "rand_noise_first_n"}
    return PlainModel(model, tok), guard, setup


class _Keyword:
    """A keyword classifier (``--classifier keyword``): isolates serving cost from MiniLM's cost."""

    def __init__(self, words):
        self.words = words

    def flag(self, prompts):
        import numpy as np

        return np.array([any(w in p.lower() for w in self.words) for p in prompts])


def request_plan(n: int, max_tokens: int, seed: int) -> list[tuple[str, dict]]:
    """``n`` (path, body) pairs: completions / chat / streamed chat in rotation; every 4th about the target."""
    forget, retain = prompt_sets()
    rnd = random.Random(seed)
    plan = []
    for i in range(n):
        text = rnd.choice(forget) if i % 4 == 0 else rnd.choice(retain)
        kind = i % 3
        if kind == 0:
            plan.append(("/v1/completions", {"prompt": text, "max_tokens": max_tokens, "temperature": 0}))
        else:
            plan.append(("/v1/chat/completions", {"messages": [{"role": "user", "content": text}],
                                                  "max_tokens": max_tokens, "temperature": 0,
                                                  "stream": kind == 2}))
    return plan


async def drive(url: str, plan: list[tuple[str, dict]], concurrency: int) -> dict:
    """Send ``plan`` with at most ``concurrency`` requests in flight; latency to the last byte."""
    import httpx

    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    errors: list[str] = []
    flagged = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:

        async def one(path: str, body: dict) -> None:
            nonlocal flagged
            async with sem:
                t0 = time.perf_counter()
                try:
                    if body.get("stream"):
                        async with client.stream("POST", path, json=body) as r:
                            lines = [ln async for ln in r.aiter_lines() if ln]
                            ok = r.status_code == 200 and lines and lines[-1] == "data: [DONE]"
                    else:
                        r = await client.post(path, json=body)
                        ok = r.status_code == 200 and r.json()["choices"]
                    if not ok:
                        errors.append(f"{path}: HTTP {r.status_code}")
                    flagged += r.headers.get("x-forgetlab-flagged") == "true"
                except Exception as exc:  # count, keep going
                    errors.append(f"{path}: {type(exc).__name__}")
                latencies.append(time.perf_counter() - t0)

        t_start = time.perf_counter()
        await asyncio.gather(*(one(p, b) for p, b in plan))
        wall = time.perf_counter() - t_start
    latencies.sort()
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return {"requests": len(plan), "errors": len(errors), "error_kinds": sorted(set(errors))[:5],
            "flagged": flagged, "wall_s": round(wall, 2), "throughput_rps": round(len(plan) / wall, 2),
            "p50_ms": round(1000 * q[49], 1), "p99_ms": round(1000 * q[98], 1),
            "mean_ms": round(1000 * statistics.fmean(latencies), 1)}


def run(guard, name: str, args) -> dict:
    from forgetlab.eco.serve.engine import ServeEngine
    from forgetlab.eco.serve.server import serve_in_thread
    from forgetlab.eco.serve.types import ServeLimits

    limits = ServeLimits(max_concurrent=max(64, args.concurrency), max_batch_size=args.batch,
                         batch_window_ms=args.window_ms, max_tokens=max(64, args.max_tokens))
    engine = ServeEngine(guard, "transformers", limits, model_name="bench")
    plan = request_plan(args.requests, args.max_tokens, args.seed)
    with serve_in_thread(engine) as srv:
        asyncio.run(drive(srv.url, plan[: min(32, len(plan))], args.concurrency))  # warm-up, not counted
        before = engine.batcher.batches, engine.batcher.rows_served
        out = asyncio.run(drive(srv.url, plan, args.concurrency))
        batches = engine.batcher.batches - before[0]
        rows = engine.batcher.rows_served - before[1]
    return {"run": name, **out, "batches": batches, "mean_batch_rows": round(rows / max(1, batches), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--batch", type=int, default=16, help="max rows per generate call")
    ap.add_argument("--window-ms", type=float, default=5.0)
    ap.add_argument("--classifier", choices=["minilm", "keyword"], default="minilm")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (1: on a shared 2-core box, 2 threads spin-wait badly)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    plain, guard, setup = build_guards(args.classifier, args.seed)
    print(json.dumps({"setup": setup, "args": vars(args), "torch_threads": torch.get_num_threads(),
                      "cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in os.getloadavg()]}))
    results = [run(plain, "without guard", args), run(guard, "with guard", args)]
    for res in results:
        print(json.dumps(res))
    base, guarded = results
    print(json.dumps({"guarded/unguarded": {
        "throughput": round(guarded["throughput_rps"] / base["throughput_rps"], 3),
        "p50": round(guarded["p50_ms"] / base["p50_ms"], 3),
        "p99": round(guarded["p99_ms"] / base["p99_ms"], 3)},
        "loadavg_after": [round(x, 2) for x in os.getloadavg()]}))
    if any(r["errors"] for r in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()

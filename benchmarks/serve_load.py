"""Bounded load test of the ECO server on loopback: errors, p50/p99 latency and throughput, with and without guard.

Starts the real server (uvicorn in a thread, transformers backend) on the same tiny random-weight Llama: once
unguarded (``PlainModel``: nothing is flagged, no classifier runs) and behind an ``EcoGuard`` with the real
all-MiniLM-L6-v2 prompt classifier and a random-noise corruption, with the server's default
``classify_ahead="auto"`` (off here: the model generates on this CPU, so the batch worker classifies each batch
first) and with the classify-ahead thread forced on; with ``--prompts synth`` (the default: a 400-prompt-per-group
fit, so the n-gram first stage is fitted and clears most benign prompts) also with the first stage bypassed,
MiniLM on every prompt (the worst case). Each server gets
``--requests`` requests with at most ``--concurrency`` in flight from an asyncio httpx client in the same
process: a rotation of completions, chat completions and streamed chat completions, a quarter of them about the
forget target (prompts none of the fit saw), greedy, ``--max-tokens`` new tokens each. Latency is measured per
request to the last byte. The servers run side by side and are loaded in interleaved rounds
(benchmarks/discipline.py: req/s medians with min-max, the load around each round); prints the derived figures
as JSON (the ratios, per-round latency medians) and any error makes the exit code 1.

Usage: ``HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/serve_load.py [--requests 500] [--concurrency 16]
[--max-tokens 16] [--classifier minilm|keyword] [--prompts synth|bench] [--rounds 5] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import statistics
import sys
import time
from pathlib import Path

import torch
from bench_prompts import prompt_sets, synth_sets
from discipline import Variant, command_line, run_rounds, spread, stderr, write_result


def prompt_data(kind: str) -> tuple[tuple[list[str], list[str]], tuple[list[str], list[str]]]:
    """((forget, retain) the classifier is fitted on, (forget, retain) the requests are drawn from).

    ``synth``: the classifier tests' generator, 400 prompts per group, requests from a fresh draw none of the fit
    saw (the n-gram first stage is fitted); ``bench``: 18 forget and 160 retain prompts, both fit and requests
    (too few held-out forget prompts for a first stage: MiniLM runs on every prompt).
    """
    if kind == "synth":
        return synth_sets()
    return prompt_sets(), prompt_sets()


def build_guards(classifier: str, data, seed: int = 0):
    """(unguarded PlainModel, guarded EcoGuard, the same guard with MiniLM on every prompt or None) over the same
    tiny Llama, and a description of the setup."""
    from forgetlab.eco.guard import EcoGuard, GuardConfig, PlainModel
    from forgetlab.eco.hooks import hidden_size
    from forgetlab.testing.tiny_lm import build_tiny_lm, build_tokenizer, n_params

    (forget, retain), (req_forget, req_retain) = data
    tok = build_tokenizer(corpus=[" ".join(forget + retain + req_forget + req_retain)], vocab_size=1024)
    tok.chat_template = ("{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n"
                         "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")
    model = build_tiny_lm("llama", tok, seed=seed, hidden=64, layers=2, heads=4, max_positions=1024)
    exact = None
    if classifier == "minilm":
        from forgetlab.eco.classify.prompt import PromptClassifier

        clf = PromptClassifier.fit(forget, retain, fpr=0.05, seed=seed)
        exact = _Exact(clf) if clf.ngram_threshold is not None else None
    else:
        clf = _Keyword(["quint"])
    cfg = GuardConfig(corruption="rand_noise_first_n", strength=2.0, k=hidden_size(model), seed=seed)
    guard = EcoGuard(model, tok, clf, cfg)
    setup = {"model": f"tiny llama, {n_params(model)} params", "classifier": classifier,
             "corruption": "rand_noise_first_n", "fit_prompts": {"forget": len(forget), "retain": len(retain)},
             "first_stage": getattr(clf, "report", {}).get("first_stage", {}).get("status")}
    return PlainModel(model, tok), guard, (EcoGuard(model, tok, exact, cfg) if exact else None), setup


class _Exact:
    """A fitted prompt classifier with its first stage bypassed: MiniLM scores every prompt (the worst case)."""

    def __init__(self, clf):
        self.clf = clf

    def flag(self, prompts):
        return self.clf.flag(prompts, first_stage=False)


class _Keyword:
    """A keyword classifier (``--classifier keyword``): isolates serving cost from MiniLM's cost."""

    def __init__(self, words):
        self.words = words

    def flag(self, prompts):
        import numpy as np

        return np.array([any(w in p.lower() for w in self.words) for p in prompts])


def request_plan(n: int, max_tokens: int, seed: int, prompts: tuple[list[str], list[str]] | None = None
                 ) -> list[tuple[str, dict]]:
    """``n`` (path, body) pairs: completions / chat / streamed chat in rotation; every 4th about the target,
    drawn from ``prompts`` (forget, retain; default :func:`prompt_sets`)."""
    forget, retain = prompts or prompt_sets()
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


def engine_of(guard, args, classify_ahead: str = "auto"):
    """A serving engine with the benchmark's limits (transformers backend)."""
    from forgetlab.eco.serve.engine import ServeEngine
    from forgetlab.eco.serve.types import ServeLimits

    limits = ServeLimits(max_concurrent=max(64, args.concurrency), max_batch_size=args.batch,
                         batch_window_ms=args.window_ms, max_tokens=max(64, args.max_tokens),
                         classify_ahead=classify_ahead)
    return ServeEngine(guard, "transformers", limits, model_name="bench")


def loaded(name: str, srv, plan: list, args, stats: dict) -> Variant:
    """One round of ``name``: the whole plan against its running server; the round's latency figures and
    batching are kept in ``stats[name]``."""
    def fn() -> None:
        before = srv.engine.batcher.batches, srv.engine.batcher.rows_served
        out = asyncio.run(drive(srv.url, plan, args.concurrency))
        batches = srv.engine.batcher.batches - before[0]
        rows = srv.engine.batcher.rows_served - before[1]
        stats[name].append({**out, "batches": batches, "mean_batch_rows": round(rows / max(1, batches), 2)})
    return Variant(name, fn, work=len(plan), unit="requests")


def per_round(stats: list[dict]) -> dict:
    """Medians with min-max of a run's per-round latency figures, and its total errors."""
    return {k: spread([s[k] for s in stats]) for k in ("p50_ms", "p99_ms", "mean_ms", "mean_batch_rows")} | {
        "errors": sum(s["errors"] for s in stats), "error_kinds": sorted({e for s in stats for e in s["error_kinds"]}),
        "flagged_per_round": spread([s["flagged"] for s in stats])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=500, help="requests per round and run")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--batch", type=int, default=16, help="max rows per generate call")
    ap.add_argument("--window-ms", type=float, default=5.0)
    ap.add_argument("--classifier", choices=["minilm", "keyword"], default="minilm")
    ap.add_argument("--prompts", choices=["synth", "bench"], default="synth",
                    help="synth: 400-prompt fit with the n-gram first stage, fresh requests; bench: 18 + 160 prompts, "
                         "MiniLM on every prompt (the figures before 2026-12-02)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (>= 5)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (1: on a shared 2-core box, 2 threads spin-wait badly)")
    ap.add_argument("--out", type=Path, default=None, help="write the result JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from forgetlab.eco.serve.server import serve_in_thread

    data = prompt_data(args.prompts)
    plain, guard, exact, setup = build_guards(args.classifier, data, args.seed)
    plan = request_plan(args.requests, args.max_tokens, args.seed, data[1])
    variants = (("unguarded", plain, "auto"), ("guarded", guard, "auto"), ("guarded, classify-ahead", guard, "on"))
    if exact is not None:
        variants += (("guarded, MiniLM on every prompt", exact, "auto"),)
    stats: dict[str, list[dict]] = {name: [] for name, _g, _a in variants}
    with contextlib.ExitStack() as stack:
        servers = {name: stack.enter_context(serve_in_thread(engine_of(g, args, ahead)))
                   for name, g, ahead in variants}
        for srv in servers.values():  # warm-up, not counted
            asyncio.run(drive(srv.url, plan[: min(32, len(plan))], args.concurrency))
        res = run_rounds([loaded(n, srv, plan, args, stats) for n, srv in servers.items()], rounds=args.rounds,
                         warmup=0, log=stderr)
    derived = {"guarded / unguarded req/s (goal >= 0.85)": res.ratio("guarded", "unguarded"),
               "guarded with classify-ahead on / unguarded req/s": res.ratio("guarded, classify-ahead", "unguarded"),
               **({"guarded, MiniLM on every prompt / unguarded req/s":
                   res.ratio("guarded, MiniLM on every prompt", "unguarded")} if exact is not None else {}),
               "setup": setup,
               **{name: per_round(s) for name, s in stats.items()}}
    doc = write_result(args.out, name="serve_load", command=command_line(), results={"loopback": res},
                       config={k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                       derived=derived, threads=args.threads)
    print(json.dumps(doc["derived"], indent=1))
    return 1 if any(derived[n]["errors"] for n in stats) else 0


if __name__ == "__main__":
    sys.exit(main())

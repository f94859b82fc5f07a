"""Sweep throughput on CPU: the same runs one at a time (``grok train`` defaults), as one batched program, and
spread over one process per core (one torch thread each), in interleaved rounds.

    python benchmarks/sweep_throughput.py [--sizes 31,97] [--rounds 5] [--runs31 32] [--runs97 8]
        [--steps31 200] [--steps97 20] [--out FILE]

Strategies (each round runs each in a fresh child process; the child times its own work after its imports, so
the worker pool's start-up counts for ``procs`` and ``procs1`` but no interpreter start-up counts for any):

- ``solo``:   the runs one after another with ``train`` (torch's default threads: one p=97 step uses both cores);
- ``batch``:  all runs as one ``train_many`` program (batched bmm, runs padded to the largest training set);
- ``procs``:  the runs cut into one batch per core, trained by the sweep's local backend (spawned processes,
              one torch thread each);
- ``procs1``: every run its own batch, the same backend (one run at a time per core, one thread each);
- ``measured``: what ``grok sweep`` does by default: batches of the size a probe measures fastest per
              run-step on this machine (:mod:`forgetlab.grok.sweep.batching`; the probe's time counts),
              trained in this process with torch's default threads;
- ``peak_mm``: a 2048^3 ``torch.mm`` at the default threads, the 2-core peak (in flop/s), in the same rounds.

FLOPs per run (full batch, n = n_train): ``6 n N p`` per step (the three matmuls of the hand-written
forward/backward) plus ``2 P N p`` for each of the two evaluations on all P pairs. All figures are medians
with min-max over rounds, with the load before and after each round (benchmarks/discipline.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from discipline import Variant, command_line, matmul_peak, run_rounds, stderr, write_result

STRATEGIES = ("solo", "batch", "procs", "procs1", "measured")


def configs(p: int, width: int, steps: int, runs: int) -> list:
    """``runs`` configs of one shape over alpha, xi and wd (seeds differ), as in a phase-diagram sweep."""
    from forgetlab.grok.config import TrainConfig

    return [TrainConfig(p=p, width=width, steps=steps, alpha=0.3 + 0.5 * (i % 4) / 3,
                        xi=0.1 + 0.6 * ((i // 4) % 4) / 3, wd=(0.0, 5.0)[(i // 16) % 2], seed=i, log_every=steps)
            for i in range(runs)]


def flops(cs: list) -> float:
    """FLOPs of training and evaluating ``cs`` (see the module docstring)."""
    from forgetlab.grok.config import n_pairs

    total = 0.0
    for c in cs:
        P = n_pairs(c.p, c.op)
        total += c.steps * 6 * int(c.alpha * P) * c.width * c.p + 2 * 2 * P * c.width * c.p
    return total


def _jobs(cs: list, per_job: int) -> list:
    """The runs as sweep batch jobs of ``per_job`` runs each."""
    from forgetlab.grok.sweep.backends import BatchJob
    from forgetlab.grok.sweep.spec import DEFAULT_TRAINER, config_dict, run_id

    chunks = [cs[i:i + per_job] for i in range(0, len(cs), per_job)]
    return [BatchJob(f"b{i}", tuple(run_id(c) for c in ch), tuple(config_dict(c) for c in ch), DEFAULT_TRAINER)
            for i, ch in enumerate(chunks)]


def child(mode: str, p: int, width: int, steps: int, runs: int) -> None:
    """Train the runs one way and print the seconds it took (after imports) and the summaries as JSON."""
    import os

    from forgetlab.grok.sweep.backends import local_backend
    from forgetlab.grok.sweep.spec import run_id
    from forgetlab.grok.train import train, train_many

    cs, cores = configs(p, width, steps, runs), len(os.sched_getaffinity(0))
    out: dict = {}
    t = time.perf_counter()
    if mode == "solo":
        out = {i: train(c, keep_history=False).summary for i, c in enumerate(cs)}
    elif mode == "batch":
        out = dict(enumerate(r.summary for r in train_many(cs, keep_history=False)))
    else:
        workers = 1 if mode == "measured" else cores
        if mode == "measured":  # what `grok sweep` does by default: the probe's time counts
            import torch

            from forgetlab.grok.sweep.batching import measure_batch_runs
            from forgetlab.grok.sweep.spec import load_trainer

            trainer = load_trainer()
            cs = sorted(cs, key=trainer.run_work)  # as plan_batches orders a shape's runs
            per, _ = measure_batch_runs(trainer, cs, 64, torch.get_num_threads(), 2**34)
        else:
            per = -(-runs // cores) if mode == "procs" else 1
        order = {run_id(c): i for i, c in enumerate(configs(p, width, steps, runs))}
        index = {rid: order[rid] for job in _jobs(cs, per) for rid in job.run_ids}
        local_backend(_jobs(cs, per), workers=workers,
                      on_done=lambda job, recs: out.update({index[r["run_id"]]: r["summary"] for r in recs}))
    seconds = time.perf_counter() - t
    print(json.dumps({"seconds": seconds, "summaries": [out[i] for i in range(runs)]}))


def strategy(mode: str, p: int, width: int, steps: int, runs: int, seen: dict) -> Variant:
    """A variant that runs ``mode`` in a fresh child and keeps its summaries in ``seen`` (to compare)."""

    def fn() -> float:
        res = subprocess.run([sys.executable, __file__, "--child", mode, str(p), str(width), str(steps),
                              str(runs)], capture_output=True, text=True, check=True)
        doc = json.loads(res.stdout.strip().splitlines()[-1])
        seen.setdefault(mode, doc["summaries"])
        return doc["seconds"]

    return Variant(mode, fn, work=runs, unit="runs", self_timed=True)


def same_results(seen: dict) -> dict:
    """Per strategy: are its runs' accuracies and losses bit-identical to ``solo``'s, and the largest
    relative difference of any numeric summary field (wall time excluded)."""
    ref, out = seen["solo"], {}
    for mode, sums in seen.items():
        worst, equal = 0.0, True
        for a, b in zip(ref, sums, strict=True):
            for k, x in a.items():
                if k == "seconds" or not isinstance(x, float):
                    continue
                equal &= x == b[k]
                worst = max(worst, abs(x - b[k]) / max(abs(x), 1e-30))
        out[mode] = {"bit_identical_to_solo": equal, "max_rel_diff": worst}
    return out


def measure(p: int, width: int, steps: int, runs: int, rounds: int) -> tuple:
    """The interleaved rounds of one size; returns (result, derived figures)."""
    from forgetlab.grok.config import n_pairs  # noqa: F401  (imports torch once, outside the rounds)

    seen: dict = {}
    vs = [strategy(m, p, width, steps, runs, seen) for m in STRATEGIES]
    peak = matmul_peak()
    vs.append(peak)
    res = run_rounds(vs, rounds=rounds, warmup=0, log=stderr)
    fl = flops(configs(p, width, steps, runs)) / runs  # per run
    derived = {f"p={p}: {m} / solo runs/s": res.ratio(m, "solo") for m in STRATEGIES[1:]}
    for m in STRATEGIES:
        res.variants[m]["flops_per_run"] = fl
        r = res.ratio(m, "peak_mm")
        derived[f"p={p}: {m} fraction of the 2-core peak"] = {**r, **{k: r[k] * fl for k in ("median", "min",
                                                                                             "max")}}
    derived[f"p={p}: results"] = same_results(seen)
    return res, derived


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="31,97", help="which of p=31 (N=128) and p=97 (N=500) to measure")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs31", type=int, default=32)
    ap.add_argument("--runs97", type=int, default=8)
    ap.add_argument("--steps31", type=int, default=200)
    ap.add_argument("--steps97", type=int, default=20)
    ap.add_argument("--out", type=Path, default=None, help="write the result JSON here")
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        mode, *nums = args.child
        child(mode, *map(int, nums))
        return 0
    shapes = {"31": (31, 128, args.steps31, args.runs31), "97": (97, 500, args.steps97, args.runs97)}
    results, derived = {}, {}
    for key in args.sizes.split(","):
        p, width, steps, runs = shapes[key]
        results[f"p={p} N={width} steps={steps} runs={runs}"], d = measure(p, width, steps, runs, args.rounds)
        derived.update(d)
    doc = write_result(args.out, name="sweep_throughput", command=command_line(),
                       config=vars(args) | {"out": str(args.out)}, results=results, derived=derived)
    print(json.dumps(doc["derived"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

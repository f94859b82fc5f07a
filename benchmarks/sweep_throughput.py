"""Sweep throughput (issue 3): 32 runs one at a time with the single-run trainer vs as one batch.

Prints, measured in this one run, for p=31/N=128 (overhead-bound) and p=97/N=500 (compute-bound): runs per
second both ways, their ratio, achieved GFLOP/s of the batch against this machine's measured peak matmul rate
(a large ``torch.mm``), and the peak resident memory of the 32-run batch (each mode runs in a fresh
subprocess, so ``ru_maxrss`` is that mode's own peak).

    .venv/bin/python benchmarks/sweep_throughput.py [--runs 32] [--steps31 200] [--steps97 20]

FLOPs counted per run and step (full batch, n = n_train): the three ``[n, N] x [N, p]``-sized matmuls of the
hand-written forward/backward, ``6 n N p``; plus ``2 P N p`` for each evaluation on all P pairs.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def configs(p: int, width: int, steps: int, runs: int):
    from forgetlab.grok.config import TrainConfig

    out = []
    for i in range(runs):
        out.append(TrainConfig(p=p, width=width, steps=steps, alpha=0.3 + 0.5 * (i % 4) / 3,
                               xi=0.1 + 0.6 * ((i // 4) % 4) / 3, wd=(0.0, 5.0)[(i // 16) % 2], seed=i,
                               log_every=steps))
    return out


def flops(cs) -> float:
    from forgetlab.grok.config import n_pairs

    total = 0.0
    for c in cs:
        P = n_pairs(c.p, c.op)
        n = int(c.alpha * P)
        total += c.steps * 6 * n * c.width * c.p + 2 * 2 * P * c.width * c.p  # steps + evaluation at 0 and end
    return total


def peak_gflops(n: int = 2048, reps: int = 5) -> float:
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def child(mode: str, p: int, width: int, steps: int, runs: int) -> None:
    from forgetlab.grok.train import train, train_many

    cs = configs(p, width, steps, runs)
    train_many(cs[:1], keep_history=False)  # warm-up (allocator, kernels)
    t = time.perf_counter()
    if mode == "solo":
        for c in cs:
            train(c, keep_history=False)
    else:
        train_many(cs, keep_history=False)
    dt = time.perf_counter() - t
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": dt, "rss_mb": rss_mb, "flops": flops(cs)}))


def measure(mode: str, p: int, width: int, steps: int, runs: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(p), str(width), str(steps), str(runs)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=32)
    ap.add_argument("--steps31", type=int, default=200)
    ap.add_argument("--steps97", type=int, default=20)
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        mode, *nums = args.child
        child(mode, *map(int, nums))
        return
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    peak = peak_gflops()
    print(f"peak matmul (2048^2 torch.mm): {peak:.1f} GFLOP/s")
    for p, width, steps in ((31, 128, args.steps31), (97, 500, args.steps97)):
        solo = measure("solo", p, width, steps, args.runs)
        batch = measure("batch", p, width, steps, args.runs)
        r_solo, r_batch = args.runs / solo["seconds"], args.runs / batch["seconds"]
        gf = batch["flops"] / batch["seconds"] / 1e9
        gf_solo = solo["flops"] / solo["seconds"] / 1e9
        print(f"p={p} N={width} steps={steps} runs={args.runs}: one at a time {r_solo:.3f} runs/s "
              f"({solo['seconds']:.1f} s), one batch {r_batch:.3f} runs/s ({batch['seconds']:.1f} s), "
              f"ratio {r_batch / r_solo:.2f}x; batch {gf:.1f} GFLOP/s = {100 * gf / peak:.0f}% of peak "
              f"(one at a time {gf_solo:.1f} GFLOP/s); peak RSS of the batch {batch['rss_mb']:.0f} MB "
              f"(one at a time {solo['rss_mb']:.0f} MB)")


if __name__ == "__main__":
    main()

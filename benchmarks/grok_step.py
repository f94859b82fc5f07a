"""Seconds per full-batch training step at p=97, N=500, alpha=0.5 (n_train = 4704): ours vs the official
dense one-hot formulation, measured in one run, interleaved, plus achieved GFLOP/s against a torch.mm peak.

    .venv/bin/python benchmarks/grok_step.py [--threads T] [--rounds K] [--steps S] [--runs R]

- ours:      forgetlab.grok.kernel.fast_grads + StackedAdamW (gather forward, hand-written backward).
- autograd:  forgetlab.grok.models.MLP (gather forward) + autograd + torch.optim.AdamW.
- dense:     the official code's formulation: nn.Linear(2p, N) on concatenated one-hot inputs, x**2,
             nn.Linear(N, p), nn.MSELoss against one-hot targets, torch.optim.AdamW, loss.backward().
FLOPs counted for "the work that remains" in ours: the three [n, N] x [N, p] products of one step
(forward, dW, dh) = 3 * 2 * n * N * p, about 1.37 GFLOP. Each variant is timed for S steps per round;
rounds alternate between variants so that a busy shared CPU slows all of them alike; we report medians.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from forgetlab.grok.data import make_dataset
from forgetlab.grok.kernel import StackedAdamW, fast_grads, flat_index, loss_targets
from forgetlab.grok.models import MLP, init_mlp_weights


def peak_gflops(size: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * size**3 / best / 1e9


def make_ours(p: int, N: int, R: int):
    ds = make_dataset(p, "add", 0.5, 0.35)
    n = ds.n_train
    E_l, W_l = [], []
    for r in range(R):
        U, V, W = init_mlp_weights(p, N, torch.Generator().manual_seed(1 + r))
        E_l.append(torch.cat([U.T, V.T]))
        W_l.append(W.T)
    E, Wt = torch.stack(E_l).contiguous(), torch.stack(W_l).contiguous()
    M, Nn, Y = ds.m[:n].expand(R, -1), ds.n[:n].expand(R, -1), ds.y[:n].expand(R, -1).contiguous()
    gm, gn = flat_index(M, Nn, p)
    rows = torch.full((R, n), 1.0 / n)
    target = loss_targets(Y, rows, p, "mse")
    opt = StackedAdamW([E, Wt], torch.full((R,), 0.01), torch.full((R,), 5.0))
    E, Wt = opt.params  # views of the optimizer's flat buffer
    gflat, (dE, dWt) = opt.new_flat_grad()

    def step():
        fast_grads(E, Wt, gm, gn, Y, rows, "quadratic", "mse", target=target, out=(dE, dWt))
        opt.step([gflat])

    return step, n


def make_autograd(p: int, N: int):
    ds = make_dataset(p, "add", 0.5, 0.35)
    n = ds.n_train
    model = MLP(p, N)
    opt = torch.optim.AdamW(model.parameters(), lr=0.01, betas=(0.9, 0.98), eps=1e-8, weight_decay=5.0)
    m, nn_, y = ds.m[:n], ds.n[:n], F.one_hot(ds.y[:n], p).float()

    def step():
        opt.zero_grad(set_to_none=True)
        F.mse_loss(model(m, nn_), y).backward()
        opt.step()

    return step


def make_dense(p: int, N: int):
    ds = make_dataset(p, "add", 0.5, 0.35)
    n = ds.n_train
    X = ds.one_hot_inputs()[:n]
    Y = F.one_hot(ds.y[:n], p).float()
    torch.manual_seed(1)  # benchmark script, not library code: the official recipe seeds globally
    fc1, fc2 = nn.Linear(2 * p, N, bias=False), nn.Linear(N, p, bias=False)
    model = nn.Sequential(fc1, nn.Identity(), fc2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.01, betas=(0.9, 0.98), eps=1e-8, weight_decay=5.0)
    crit = nn.MSELoss()

    def step():
        opt.zero_grad()
        scores = fc2(torch.pow(fc1(X), 2))
        loss = crit(scores, Y)
        loss.backward()
        opt.step()

    return step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--runs", type=int, default=1, help="R runs in one batch for 'ours'")
    ap.add_argument("--p", type=int, default=97)
    ap.add_argument("--width", type=int, default=500)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    p, N = args.p, args.width
    ours, n = make_ours(p, N, args.runs)
    variants = {"ours": ours, "autograd": make_autograd(p, N), "dense": make_dense(p, N)}
    times: dict[str, list[float]] = {k: [] for k in variants}
    peaks = []
    for fn in variants.values():  # warm-up
        fn()
    for _ in range(args.rounds):
        peaks.append(peak_gflops())
        for name, fn in variants.items():
            t = time.perf_counter()
            for _ in range(args.steps):
                fn()
            dt = (time.perf_counter() - t) / args.steps
            times[name].append(dt / (args.runs if name == "ours" else 1))
    med = {k: statistics.median(v) for k, v in times.items()}
    peak = statistics.median(peaks)
    flops = 3 * 2 * n * N * p
    print(f"p={p} N={N} n_train={n} threads={torch.get_num_threads()} runs_in_batch={args.runs} "
          f"rounds={args.rounds} steps/round={args.steps}")
    print(f"torch.mm peak (2048^3, median of rounds): {peak:.1f} GFLOP/s")
    for k, v in med.items():
        print(f"{k:9s} {1e3 * v:8.2f} ms/step (per run)   min {1e3 * min(times[k]):8.2f}   "
              f"{flops / v / 1e9:6.1f} GFLOP/s on the 3 W products ({100 * flops / v / 1e9 / peak:5.1f}% of peak)")
    print(f"ratio ours/dense    = {med['ours'] / med['dense']:.3f}  (goal <= 0.4)")
    print(f"ratio ours/autograd = {med['ours'] / med['autograd']:.3f}")


if __name__ == "__main__":
    main()

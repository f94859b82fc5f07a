"""Seconds per full-batch training step at p=97, N=500, alpha=0.5 (n_train = 4704): ours vs the official
dense one-hot formulation, measured in one run, interleaved, plus achieved GFLOP/s against a torch.mm peak.

    python benchmarks/grok_step.py [--threads T] [--rounds K] [--steps S] [--runs R] [--out FILE]

- ours:      forgetlab.grok.kernel.fast_grads + StackedAdamW (gather forward, hand-written backward; torch's
             fused AdamW kernel, the default); ours_unfused_adamw: the same with StackedAdamW(fused=False).
- ours_bf16: ours with matmul_precision="bf16" (forgetlab.grok.precision), timed only where the CPU has native
             bf16 units (AVX-512 BF16 or AMX).
- autograd:  forgetlab.grok.models.MLP (gather forward) + autograd + torch.optim.AdamW.
- dense:     the official code's formulation: nn.Linear(2p, N) on concatenated one-hot inputs, x**2,
             nn.Linear(N, p), nn.MSELoss against one-hot targets, torch.optim.AdamW, loss.backward().
FLOPs counted for "the work that remains" in ours: the three [n, N] x [N, p] products of one step
(forward, dW, dh) = 3 * 2 * n * N * p, about 1.37 GFLOP. Each variant is timed for S steps per round, in
interleaved rounds with the peak (a 2048^3 torch.mm) among them (benchmarks/discipline.py: medians with min-max,
load before and after every round, contended rounds marked). Default: 1 thread, the issue's yardstick.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from discipline import Variant, command_line, matmul_peak, run_rounds, stderr, write_result
from torch import nn

from forgetlab.grok.data import make_dataset
from forgetlab.grok.kernel import StackedAdamW, fast_grads, flat_index, loss_targets, row_bags
from forgetlab.grok.models import MLP, init_mlp_weights
from forgetlab.grok.precision import Bf16Matmuls
from forgetlab.hardware import bf16_is_fast


def make_ours(p: int, N: int, R: int, fused: bool = True, bf16: bool = False):
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
    opt = StackedAdamW([E, Wt], torch.full((R,), 0.01), torch.full((R,), 5.0), fused=fused)
    E, Wt = opt.params  # views of the optimizer's flat buffer
    gflat, (dE, dWt) = opt.new_flat_grad()
    bags = row_bags(gm, gn, R * 2 * p)

    def step():
        fast_grads(E, Wt, gm, gn, Y, rows, "quadratic", "mse", target=target, out=(dE, dWt), bags=bags)
        opt.step([gflat])

    def step_bf16():  # the opt-in matmul_precision="bf16": products on bf16 operands
        with Bf16Matmuls():
            step()

    return (step_bf16 if bf16 else step), n


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


def variants(p: int, N: int, runs: int) -> tuple[list[Variant], int]:
    """The compared steps (work = the 3-matmul FLOPs of one step of one run) and the peak, and n_train."""
    ours, n = make_ours(p, N, runs)
    flops = 3 * 2 * n * N * p
    unfused, _ = make_ours(p, N, runs, fused=False)
    vs = [Variant("ours", ours, work=flops * runs, unit="flop"),
          Variant("ours_unfused_adamw", unfused, work=flops * runs, unit="flop"),
          Variant("autograd", make_autograd(p, N), flops, "flop"), Variant("dense", make_dense(p, N), flops, "flop"),
          matmul_peak()]
    if bf16_is_fast():  # emulated bf16 (no native units) is many times slower: not a variant worth timing
        vs.insert(1, Variant("ours_bf16", make_ours(p, N, runs, bf16=True)[0], work=flops * runs, unit="flop"))
    return vs, n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0 = torch default)")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds (>= 5)")
    ap.add_argument("--steps", type=int, default=5, help="steps per variant per round")
    ap.add_argument("--runs", type=int, default=1, help="R runs in one batch for 'ours'")
    ap.add_argument("--p", type=int, default=97)
    ap.add_argument("--width", type=int, default=500)
    ap.add_argument("--out", type=Path, default=None, help="write the result JSON here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    vs, n = variants(args.p, args.width, args.runs)
    res = run_rounds(vs, rounds=args.rounds, repeat=args.steps, log=stderr)
    derived = {"ours / dense, seconds per run-step (goal <= 0.40)": _inverse(res.ratio("ours", "dense")),
               "ours / autograd, seconds per run-step": _inverse(res.ratio("ours", "autograd")),
               "ours with the unfused AdamW / dense, seconds per run-step": _inverse(res.ratio("ours_unfused_adamw",
                                                                                              "dense")),
               "ours: fraction of the peak_mm rate": res.ratio("ours", "peak_mm")}
    if "ours_bf16" in res.variants:
        derived["ours with bf16 matmuls (opt-in) / dense, seconds per run-step"] = _inverse(res.ratio("ours_bf16",
                                                                                                     "dense"))
    if torch.get_num_threads() == 1:  # one thread: CPU time ignores the time descheduled by neighbours
        derived["ours / dense, CPU seconds per run-step"] = _inverse(res.ratio("ours", "dense", clock="cpu"))
        derived["ours: fraction of the peak_mm rate, CPU clock"] = res.ratio("ours", "peak_mm", clock="cpu")
    doc = write_result(args.out, name="grok_step", command=command_line(), results={f"p={args.p} N={args.width} "
                       f"n={n}": res}, config=vars(args) | {"out": str(args.out)}, derived=derived)
    print(json.dumps(doc["derived"], indent=1))
    return 0


def _inverse(r: dict) -> dict:
    """A rate ratio turned into a time ratio (median and min-max swap ends)."""
    return {**r, "median": 1 / r["median"], "min": 1 / r["max"], "max": 1 / r["min"], "of": "seconds"}


if __name__ == "__main__":
    sys.exit(main())

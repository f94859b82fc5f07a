"""Seconds per training-mode BatchNorm layer (forward + backward) of App. G's 3-layer case D4 at p = 97: the
kernel's ``F.batch_norm`` path against the masked mean/variance formula through autograd that it replaced,
measured in one run, interleaved, with a torch.mm peak among the rounds.

    python benchmarks/batchnorm_step.py [--threads T] [--rounds K] [--calls C] [--out FILE]

Shapes: ``h [R, B, N]`` = 3 seeds x 7,527 training pairs (alpha 0.8 of 97^2) x width 500, one hidden layer's
post-activation; D4 has two such layers per step.
- ours:         ``forgetlab.grok.kernel._batchnorm`` (all rows valid: one group), gradients of h, gamma, beta.
- ours_padded:  the same with the runs in two groups (2 runs with all rows, 1 with 80% of them, rest padding),
                as in a phase-diagram batch of several alphas.
- formula:      the former implementation: masked batch mean and biased variance written out, through autograd.
Work: elements of ``h`` per call. Timing discipline: benchmarks/discipline.py (medians with min-max, load
before and after every round, contended rounds marked).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from discipline import Variant, command_line, matmul_peak, run_rounds, stderr, write_result

from forgetlab.grok.kernel import BN_EPS, _batchnorm


def _bn_state(R: int, N: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    return {"weight": (1 + 0.1 * torch.randn(R, N, generator=g)).requires_grad_(True),
            "bias": (0.1 * torch.randn(R, N, generator=g)).requires_grad_(True),
            "running_mean": torch.zeros(R, N), "running_var": torch.ones(R, N)}


def formula(h: torch.Tensor, bn: dict[str, torch.Tensor], rows: torch.Tensor) -> torch.Tensor:
    """The masked BatchNorm formula the kernel used before (running statistics left out: no grad work)."""
    w = rows[:, :, None]
    cnt = w.sum(1, keepdim=True)
    mean = (h * w).sum(1, keepdim=True) / cnt
    var = ((h - mean).square() * w).sum(1, keepdim=True) / cnt
    return (h - mean) / torch.sqrt(var + BN_EPS) * bn["weight"][:, None] + bn["bias"][:, None]


def variants(R: int, B: int, N: int) -> list[Variant]:
    """The three BatchNorm layers (forward + backward of h, gamma, beta) and the peak."""
    g = torch.Generator().manual_seed(0)
    h = torch.relu(torch.randn(R, B, N, generator=g)).requires_grad_(True)
    grad_out = torch.randn(R, B, N, generator=g)
    bn = _bn_state(R, N, g)
    rows = torch.ones(R, B)
    n_short = int(0.8 * B)
    padded = [(0, R - 1, B), (R - 1, R, n_short)]

    def backward(out: torch.Tensor) -> None:
        torch.autograd.grad(out, [h, bn["weight"], bn["bias"]], grad_out)

    work = float(R * B * N)
    return [Variant("ours", lambda: backward(_batchnorm(h, bn, None, True)), work, "elements"),
            Variant("ours_padded", lambda: backward(_batchnorm(h, bn, padded, True)), work, "elements"),
            Variant("formula", lambda: backward(formula(h, bn, rows)), work, "elements"), matmul_peak()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0 = torch default)")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds (>= 5)")
    ap.add_argument("--calls", type=int, default=5, help="layer calls per variant per round")
    ap.add_argument("--runs", type=int, default=3, help="R runs (seeds) in the batch")
    ap.add_argument("--rows", type=int, default=7527, help="B training rows per run (D4 at p = 97: 7,527)")
    ap.add_argument("--width", type=int, default=500)
    ap.add_argument("--out", type=Path, default=None, help="write the result JSON here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    res = run_rounds(variants(args.runs, args.rows, args.width), rounds=args.rounds, repeat=args.calls, log=stderr)
    derived = {"ours / formula, seconds per layer": res.ratio("ours", "formula", of="seconds"),
               "ours_padded / formula, seconds per layer": res.ratio("ours_padded", "formula", of="seconds")}
    if torch.get_num_threads() == 1:
        derived["ours / formula, CPU seconds per layer"] = res.ratio("ours", "formula", of="seconds", clock="cpu")
    doc = write_result(args.out, name="batchnorm_step", command=command_line(),
                       results={f"R={args.runs} B={args.rows} N={args.width}": res},
                       config=vars(args) | {"out": str(args.out)}, derived=derived)
    print(json.dumps(doc["derived"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

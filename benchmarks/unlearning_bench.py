"""Run the unlearning benchmark at one scale and print its timings and the issue's acceptance numbers.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/unlearning_bench.py --scale default --answers name-free \
        --out out/unlearning-default-namefree

Prints, from one run: seconds per part (model training is skipped when the cache holds the models), ECO's
model utility as a ratio of the target's, forget-set generation ROUGE-L of ECO minus the retain model's, forget
quality of every method, and the multiple-choice accuracies against chance and the target.
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", default="tiny")
    ap.add_argument("--answers", default="name-free")
    ap.add_argument("--methods", default="eco,ga,gd,npo")
    ap.add_argument("--out", required=True)
    ap.add_argument("--cache", default=None)
    ap.add_argument("--splits", default="", help="comma-separated subset of the scale's forget splits")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    from forgetlab.unlearning.bench.run import run_bench

    last = {}

    def progress(task: str, done: int, total: int) -> None:
        if task not in last or done == total or time.time() - last[task] > 30:
            last[task] = time.time()
            print(f"{time.strftime('%X')} {task} {done}/{total}", flush=True)

    res = run_bench(a.out, a.scale, a.answers, tuple(a.methods.split(",")), cache_dir=a.cache, overwrite=True,
                    progress=progress, splits=tuple(x for x in a.splits.split(",") if x) or None)
    print("\n== timings (s) ==")
    for k, v in res.timings.items():
        print(f"{k:32s} {v:8.1f}")
    print("\n== per split ==")
    for split in dict.fromkeys(r["split"] for r in res.rows):
        rows = {(r["method"], r["protocol"]): r for r in res.rows if r["split"] == split}
        tgt, ret = rows[("target", "-")], rows[("retain", "-")]
        print(f"{split}: target utility {tgt['model_utility']:.3f}, target FQ {tgt['forget_quality']:.2e}")
        for (m, p), r in rows.items():
            extra = ""
            if m == "eco":
                extra = (f" utility/target {r['model_utility'] / tgt['model_utility']:.3f}"
                         f" forgetROUGE-retain {r['forget_Q_A_ROUGE'] - ret['forget_Q_A_ROUGE']:+.3f}"
                         f" FPR {r['classifier_fpr']:.3f} FNR {r['classifier_fnr']:.3f}")
            print(f"  {m:7s} {p:10s} FQ {r['forget_quality']:.2e} MU {r['model_utility']:.3f} "
                  f"fROUGE {r['forget_Q_A_ROUGE']:.3f}{extra}")
    print("\n== multiple choice ==")
    print(json.dumps(res.mc_rows, indent=1))
    print(f"\nwrote {res.files['md']}")


if __name__ == "__main__":
    main()

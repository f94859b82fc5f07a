"""ECO prompt-classifier throughput and error rates, measured in one run (issue 4, "Speed").

Prints prompts/s on batches of 64 typical short prompts for: MiniLM embedding alone, the classifier with MiniLM on
every prompt ("exact"), and the classifier with the hashed n-gram first stage ("cascade") on (a) the held-out
test mix (forget + retain) and (b) benign-only traffic; plus the held-out FPR/FNR with and without the first
stage, and the cost of one 2,000-token prompt. The CPU is whatever this process gets: the load average is
printed so a shared machine can be recognized.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/classifier_throughput.py [--quick] [--threads N]
        [--save DIR | --load DIR]

Rates are wall-clock prompts/s (best of --reps) and prompts per CPU-second of this process (process_time):
the second is the fairer figure on a CPU shared with other jobs when --threads 1 (with more threads, idle
OpenMP threads spin and inflate CPU time).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _synth():
    spec = importlib.util.spec_from_file_location(
        "classifier_synth", ROOT / "tests" / "eco_classifier" / "classifier_synth.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _rate(fn, prompts: list[str], batch: int, reps: int) -> tuple[float, float]:
    """Best-of-``reps`` (prompts per wall second, prompts per CPU second) of ``fn`` in batches of ``batch``."""
    best, best_cpu = float("inf"), float("inf")
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        for s in range(0, len(prompts), batch):
            fn(prompts[s:s + batch])
        best = min(best, time.perf_counter() - t)
        best_cpu = min(best_cpu, time.process_time() - c)
    return len(prompts) / best, len(prompts) / best_cpu


def _fresh_rates(flags: np.ndarray, is_forget: np.ndarray) -> dict[str, float]:
    return {"fpr": float(flags[~is_forget].mean()), "fnr": float((~flags[is_forget]).mean()),
            "false_positives": int(flags[~is_forget].sum()), "false_negatives": int((~flags[is_forget]).sum()),
            "n_retain": int((~is_forget).sum()), "n_forget": int(is_forget.sum())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller data (a smoke run)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--calibration", choices=("marginal", "pac"), default="marginal")
    ap.add_argument("--compare-windows", action="store_true",
                    help="also score 2,000-token filler prompts with windows 64/32 and 32/16 (exact mode)")
    ap.add_argument("--save", type=Path, default=None, help="save the fitted classifier here")
    ap.add_argument("--load", type=Path, default=None, help="load a classifier saved by --save (no fit)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.threads:
        torch.set_num_threads(args.threads)
    from forgetlab.eco.classify.encoder import Encoder
    from forgetlab.eco.classify.prompt import PromptClassifier

    synth = _synth()
    n = 120 if args.quick else 400
    forget, retain = synth.make_sets(n_forget=n, n_retain_people=n, n_general=n, seed=0)
    fpr = 0.05 if args.quick else 0.01
    t0 = time.perf_counter()
    enc = Encoder.load()
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    if args.load:
        clf = PromptClassifier.from_pretrained(args.load, encoder=enc)
        t_fit = float("nan")
    else:
        clf = PromptClassifier.fit(forget, retain, fpr=fpr, seed=0, calibration=args.calibration,
                                   first_stage_miss=0.02 if not args.quick else 0.05, encoder=enc)
        t_fit = time.perf_counter() - t0
        if args.save:
            clf.save_pretrained(args.save, overwrite=True)
    rep = clf.report

    # typical short prompts, none seen in training: a fresh draw (other seed) of both kinds
    f2, r2 = synth.make_sets(n_forget=128, n_retain_people=128, n_general=128, seed=99)
    seen = set(forget) | set(retain)
    fresh_forget = set(f2)
    mix = [p for p in f2 + r2 if p not in seen]
    rng = np.random.default_rng(0)
    mix = [mix[i] for i in rng.permutation(len(mix))][:256]
    is_forget = np.array([p in fresh_forget for p in mix])
    benign = [p for p in r2 if p not in seen][:256]
    batch = 64
    results = {
        "threads": torch.get_num_threads(), "load_avg_1min": os.getloadavg()[0],
        "encoder_load_s": round(t_load, 2), "fit_s": round(t_fit, 1),
        "n_prompts_fit": {"forget": len(forget), "retain": len(retain)},
        "mean_wordpieces_mix": float(np.mean([len(enc.tokenizer(p)["input_ids"]) for p in mix])),
        "minilm_embed_pps": _rate(lambda b: enc.embed(b, batch), mix, batch, args.reps),
        "exact_pps_mix": _rate(lambda b: clf.flag(b, first_stage=False), mix, batch, args.reps),
    }
    if clf.ngram is not None:
        results["cascade_pps_mix"] = _rate(clf.flag, mix, batch, args.reps)
        results["cascade_pps_benign"] = _rate(clf.flag, benign, batch, args.reps)
        results["first_stage_only_pps"] = _rate(lambda b: clf.ngram.local_score(b), mix, batch, args.reps)
        results["cleared_fraction_mix"] = float(np.mean(clf.score(mix) == -np.inf))
        results["cleared_fraction_benign"] = float(np.mean(clf.score(benign) == -np.inf))
        results["fresh_mix_cascade"] = _fresh_rates(clf.flag(mix), is_forget)
    results["fresh_mix_exact"] = _fresh_rates(clf.flag(mix, first_stage=False), is_forget)
    long_prompt = synth.filler(enc.tokenizer, 2000, rng) + " Where was Marlowe Quenby born?"
    for mode in (False, None):
        t0 = time.perf_counter()
        flagged = bool(clf.flag([long_prompt], first_stage=mode)[0])
        key = "exact" if mode is False else "cascade"
        results[f"long_2000_tokens_{key}_s"] = round(time.perf_counter() - t0, 2)
        results[f"long_2000_tokens_{key}_flagged"] = flagged
    if args.compare_windows:
        qs = ["Where was Marlowe Quenby born?", "What genre does Tessaly Vordran write in?",
              "Tell me about Al-Kuwaiti's books."]
        pads = [synth.filler(enc.tokenizer, 2000, rng) for _ in range(len(qs) + 1)]
        probes = [pad + " " + q for pad, q in zip(pads, qs, strict=False)] + [pads[-1]]
        saved = (clf.config.window, clf.config.stride)
        for w, st in ((64, 32), (32, 16)):
            clf.config.window, clf.config.stride = w, st
            t0 = time.perf_counter()
            margin = clf.score(probes, first_stage=False) - clf.threshold
            results[f"window_{w}_{st}"] = {"margins_filler_then_question": margin[:-1].round(3).tolist(),
                                           "margin_benign_filler": round(float(margin[-1]), 3),
                                           "seconds": round(time.perf_counter() - t0, 1)}
            print(f"window {w}/{st}: score - threshold, filler + question {margin[:-1].round(2).tolist()}, "
                  f"benign filler {margin[-1]:.2f} ({results[f'window_{w}_{st}']['seconds']} s)")
        clf.config.window, clf.config.stride = saved
    results["heldout"] = {k: rep.get(k) for k in ("fpr_target", "n", "test", "test_exact", "first_stage")}

    print(f"threads={results['threads']}  load avg (1 min)={results['load_avg_1min']:.2f}  "
          f"fit {results['fit_s']} s on {len(forget)} forget / {len(retain)} retain prompts")
    print(f"typical prompts: {results['mean_wordpieces_mix']:.1f} word pieces on average, batch {batch}")
    def line(label: str, key: str, extra: str = "") -> None:
        wall, cpu = results[key]
        print(f"{label:32s}{wall:9.1f} prompts/s wall {cpu:9.1f} prompts/CPU-s {extra}")

    print(f"{'':32s}{'':>25s} (best of {args.reps})")
    line("MiniLM embedding alone", "minilm_embed_pps")
    line("classifier, exact (MiniLM all)", "exact_pps_mix")
    if "cascade_pps_mix" in results:
        ex = results["exact_pps_mix"][0]
        line("classifier, cascade, fresh mix", "cascade_pps_mix",
             f"({results['cleared_fraction_mix']:.0%} cleared; x{results['cascade_pps_mix'][0] / ex:.2f} wall)")
        line("classifier, cascade, benign", "cascade_pps_benign",
             f"({results['cleared_fraction_benign']:.0%} cleared; x{results['cascade_pps_benign'][0] / ex:.2f})")
        line("n-gram first stage alone", "first_stage_only_pps")
    for key in ("fresh_mix_exact", "fresh_mix_cascade"):
        if key in results:
            r = results[key]
            print(f"{key:18s}: FPR {r['fpr']:.4f} ({r['false_positives']}/{r['n_retain']})  FNR {r['fnr']:.4f} "
                  f"({r['false_negatives']}/{r['n_forget']})")
    for key in ("test_exact", "test"):
        r = rep.get(key, {})
        if "fpr" in r:
            print(f"held-out {key:10s}: FPR {r['fpr']:.4f} ({r['false_positives']}/{r['n_retain']}, 95% upper "
                  f"{r['fpr_upper95']:.4f}, target {rep['fpr_target']})  FNR {r['fnr']:.4f} "
                  f"({r['false_negatives']}/{r['n_forget']})")
    print(f"one 2,000-token prompt: exact {results['long_2000_tokens_exact_s']} s "
          f"(flagged={results['long_2000_tokens_exact_flagged']}), cascade {results['long_2000_tokens_cascade_s']} s "
          f"(flagged={results['long_2000_tokens_cascade_flagged']})")
    print(json.dumps(results, default=float))


if __name__ == "__main__":
    main()

"""ECO prompt-classifier throughput and error rates, in interleaved rounds (benchmarks/discipline.py).

Measures prompts/s on batches of 64 typical short prompts for: MiniLM embedding alone (in the precision that
serves), the classifier with MiniLM on every prompt ("exact"; a bf16 classifier's fp32 twin too), and the classifier with the hashed n-gram first stage ("cascade") on (a) a fresh
held-out mix (forget + retain) and (b) benign-only traffic, and the first stage alone; plus the fresh mix's
FPR/FNR with and without the first stage, the held-out report of the fit, and the cost of one 2,000-token
prompt. Every rate is a median with min-max over interleaved rounds, with the load around each round.

    HF_HUB_OFFLINE=1 python benchmarks/classifier_throughput.py [--quick] [--threads N] [--rounds 5]
        [--precision auto|fp32|bf16] [--save DIR | --load DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from bench_prompts import synth_module
from discipline import Variant, command_line, run_rounds, stderr, write_result

BATCH = 64  # the batch the server and the guard classify at most at once


def classifier(args, synth, enc, precision: str | None = None):
    """Fit (or load) the prompt classifier (in ``precision``, default ``--precision``); returns it, its fit data
    and the fit seconds."""
    from forgetlab.eco.classify.prompt import PromptClassifier

    n = 120 if args.quick else 400
    forget, retain = synth.make_sets(n_forget=n, n_retain_people=n, n_general=n, seed=0)
    if args.load:
        return PromptClassifier.from_pretrained(args.load, encoder=enc), forget, retain, None
    t0 = time.perf_counter()
    clf = PromptClassifier.fit(forget, retain, fpr=0.05 if args.quick else 0.01, seed=0,
                               calibration=args.calibration, first_stage_miss=0.05 if args.quick else 0.02,
                               encoder=enc, precision=precision or args.precision)
    fit_s = time.perf_counter() - t0
    if args.save:
        clf.save_pretrained(args.save, overwrite=True)
    return clf, forget, retain, fit_s


def traffic(synth, seen: set[str]) -> tuple[list[str], np.ndarray, list[str]]:
    """Typical short prompts none of the fit saw: a shuffled forget + retain mix (with its truth), and benign."""
    f2, r2 = synth.make_sets(n_forget=128, n_retain_people=128, n_general=128, seed=99)
    mix = [p for p in f2 + r2 if p not in seen]
    mix = [mix[i] for i in np.random.default_rng(0).permutation(len(mix))][:256]
    fresh_forget = set(f2)
    return mix, np.array([p in fresh_forget for p in mix]), [p for p in r2 if p not in seen][:256]


def batched(fn, prompts: list[str]):
    """``fn`` over ``prompts`` in batches of :data:`BATCH`, as one timed call."""
    def run() -> None:
        for s in range(0, len(prompts), BATCH):
            fn(prompts[s:s + BATCH])
    return run


def variants(clf, mix: list[str], benign: list[str], twin=None) -> list[Variant]:
    """The compared paths, each a pass over its traffic (work = prompts); MiniLM alone in the precision that
    serves; with a bf16 classifier, its fp32 twin's flag path in the same rounds."""
    vs = [Variant("minilm_embed", batched(lambda b: clf.encoder.embed(b, BATCH), mix), len(mix), "prompts"),
          Variant("exact_mix", batched(lambda b: clf.flag(b, first_stage=False), mix), len(mix), "prompts")]
    if twin is not None:
        vs.append(Variant("exact_mix_fp32", batched(lambda b: twin.flag(b, first_stage=False), mix), len(mix),
                          "prompts"))
    if clf.ngram is not None:
        vs += [Variant("cascade_mix", batched(clf.flag, mix), len(mix), "prompts"),
               Variant("cascade_benign", batched(clf.flag, benign), len(benign), "prompts"),
               Variant("first_stage_only", batched(clf.ngram.local_score, mix), len(mix), "prompts")]
    return vs


def error_rates(flags: np.ndarray, is_forget: np.ndarray) -> dict[str, float]:
    """FPR / FNR of ``flags`` against the truth, with counts."""
    return {"fpr": float(flags[~is_forget].mean()), "fnr": float((~flags[is_forget]).mean()),
            "false_positives": int(flags[~is_forget].sum()), "false_negatives": int((~flags[is_forget]).sum()),
            "n_retain": int((~is_forget).sum()), "n_forget": int(is_forget.sum())}


def facts(clf, enc, synth, mix, is_forget, benign) -> dict:
    """Everything besides rates: cleared fractions, error rates on the fresh mix, one long prompt's cost."""
    out: dict = {"mean_wordpieces_mix": float(np.mean([len(enc.tokenizer(p)["input_ids"]) for p in mix])),
                 "fresh_mix_exact": error_rates(clf.flag(mix, first_stage=False), is_forget)}
    if clf.ngram is not None:
        out["cleared_fraction_mix"] = float(np.mean(clf.score(mix) == -np.inf))
        out["cleared_fraction_benign"] = float(np.mean(clf.score(benign) == -np.inf))
        out["fresh_mix_cascade"] = error_rates(clf.flag(mix), is_forget)
    long_prompt = synth.filler(enc.tokenizer, 2000, np.random.default_rng(0)) + " Where was Marlowe Quenby born?"
    for mode, key in ((False, "exact"), (None, "cascade")):
        t0 = time.perf_counter()
        flagged = bool(clf.flag([long_prompt], first_stage=mode)[0])
        out[f"long_2000_tokens_{key}"] = {"seconds": round(time.perf_counter() - t0, 2), "flagged": flagged}
    rep = clf.report
    out["heldout"] = {k: rep.get(k) for k in ("fpr_target", "n", "test", "test_exact", "first_stage")}
    return out


def agreement_with_fp32(clf, twin, mix: list[str]) -> dict:
    """A bf16 classifier against the same fit in fp32 (``twin``): thresholds, the largest score difference and
    the flags that differ on the fresh mix and on every held-out test set of the fit (the issue's tolerance)."""
    out = {"threshold_bf16": clf.threshold, "threshold_fp32": twin.threshold}
    sets = {"fresh_mix": mix, **{f"heldout_{k}": v for k, v in twin.heldout.items() if v}}
    for name, prompts in sets.items():
        a, b = clf.score(prompts, first_stage=False), twin.score(prompts, first_stage=False)
        finite = np.isfinite(a) & np.isfinite(b)
        out[name] = {"n": len(prompts), "flags_differ": int((clf.flag(prompts) != twin.flag(prompts)).sum()),
                     "max_abs_score_diff": float(np.abs(a - b)[finite].max()) if finite.any() else 0.0}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller fit data (a smoke run)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (>= 5)")
    ap.add_argument("--calibration", choices=("marginal", "pac"), default="marginal")
    ap.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                    help="the encoder's precision (auto: bf16 on AMX / AVX-512 BF16 CPUs, else fp32); a bf16 run "
                         "also fits the fp32 twin and reports where their flags differ")
    ap.add_argument("--save", type=Path, default=None, help="save the fitted classifier here")
    ap.add_argument("--load", type=Path, default=None, help="load a classifier saved by --save (no fit)")
    ap.add_argument("--out", type=Path, default=None, help="write the result JSON here")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.threads:
        torch.set_num_threads(args.threads)
    from forgetlab.eco.classify.encoder import Encoder

    synth, enc = synth_module(), Encoder.load()
    clf, forget, retain, fit_s = classifier(args, synth, enc)
    mix, is_forget, benign = traffic(synth, set(forget) | set(retain))
    bf16_fit = clf.config.precision == "bf16" and not args.load
    twin = classifier(args, synth, enc, precision="fp32")[0] if bf16_fit else None
    res = run_rounds(variants(clf, mix, benign, twin), rounds=args.rounds, log=stderr)
    derived = {f"{v} / exact_mix prompts/s": res.ratio(v, "exact_mix") for v in res.variants if v != "exact_mix"}
    derived.update({"fit_seconds": fit_s, "n_prompts_fit": {"forget": len(forget), "retain": len(retain)},
                    "precision": clf.config.precision, **facts(clf, enc, synth, mix, is_forget, benign)})
    if twin is not None:
        derived["agreement_with_fp32"] = agreement_with_fp32(clf, twin, mix)
    doc = write_result(args.out, name="classifier_throughput", command=command_line(),
                       config={k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                       results={f"batch {BATCH}": res}, threads=torch.get_num_threads(), derived=derived)
    print(json.dumps(doc["derived"], indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())

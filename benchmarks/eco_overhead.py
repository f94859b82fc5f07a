"""ECO guard overhead, measured in one run: classifier throughput, guard cost vs the base forward, scaling.

Prints, on a batch of ``--batch`` prompts (default 64):
- classifier prompts per second (``forgetlab.eco.classify.prompt.PromptClassifier`` fitted here on synthetic prompts;
  with and without its n-gram first stage);
- for causal LMs built from configs (random weights; timing only) from tiny to >= 100M parameters: the base
  forward time on the batch, the corruption cost (the guard's row-wise corruption op alone, the batched op, and
  hooked minus plain forward, paired), and
  the guard's extra time (classify + corrupt) as a fraction of the base forward;
- the extrapolation of that fraction to a 1B-parameter forward (base time fitted as proportional to parameters).

Usage: ``HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/eco_overhead.py [--batch 64] [--reps 3] [--device cpu]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

SIZES = {  # name: (hidden, layers, heads, vocab)
    "tiny": (32, 2, 4, 512),
    "small": (256, 4, 4, 8000),
    "medium": (512, 8, 8, 32000),
    "base": (768, 12, 12, 32000),
}


def prompts(n: int, seed: int = 0) -> tuple[list[str], list[str], list[str]]:
    """Synthetic forget / retain training prompts and a mixed batch of ``n`` test prompts (~30 tokens each)."""
    import random

    from bench_prompts import prompt_sets

    rnd = random.Random(seed)
    forget, retain = prompt_sets()
    pad = " Please answer in detail, with examples, and explain your reasoning step by step."
    batch = [(rnd.choice(forget) if i % 4 == 0 else rnd.choice(retain)) + pad for i in range(n)]
    return forget, retain, batch


def timed(fn, reps: int) -> float:
    """Median wall time of ``fn()`` over ``reps`` runs (after one warm-up)."""
    fn()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def paired(fa, fb, reps: int) -> tuple[float, float, float]:
    """Medians of ``fa()``, ``fb()`` and of their per-rep difference, alternating the two (drift cancels)."""
    fa(), fb()
    ta, tb = [], []
    for _ in range(reps):
        for f, acc in ((fa, ta), (fb, tb)):
            t0 = time.perf_counter()
            f()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            acc.append(time.perf_counter() - t0)
    return statistics.median(ta), statistics.median(tb), statistics.median([b - a for a, b in zip(ta, tb, strict=True)])


def classifier_bench(batch: list[str], forget: list[str], retain: list[str], reps: int) -> tuple[object, dict]:
    try:
        from forgetlab.eco.classify.prompt import PromptClassifier
    except ImportError as exc:  # part B not present: report and go on with the model side
        print(f"classifier: not available ({exc})")
        return None, {}
    t0 = time.perf_counter()
    clf = PromptClassifier.fit(forget, retain, fpr=0.05, seed=0)
    fit_s = time.perf_counter() - t0
    res = {"fit_seconds": fit_s}
    t_all = timed(lambda: clf.score(batch, first_stage=False), reps)
    res["prompts_per_s_minilm"] = len(batch) / t_all
    if getattr(clf, "ngram", None) is not None and getattr(clf, "ngram_threshold", None) is not None:
        t_cascade = timed(lambda: clf.score(batch), reps)
        res["prompts_per_s_cascade"] = len(batch) / t_cascade
    res["flagged_in_batch"] = int(clf.flag(batch).sum())
    return clf, res


def model_bench(name: str, tok, batch: list[str], clf_seconds: float, reps: int, device: str) -> dict:
    from forgetlab.eco.corruptions import apply_corruption, apply_rowwise
    from forgetlab.eco.hooks import corrupt_embeddings, token_seed
    from forgetlab.testing.tiny_lm import n_params, tiny_config

    hidden, layers, heads, vocab = SIZES[name]
    from transformers import AutoModelForCausalLM

    cfg = tiny_config("llama", max(vocab, len(tok)), hidden=hidden, layers=layers, heads=heads,
                      pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(cfg).eval().to(device)
    enc = tok(batch, return_tensors="pt", padding=True).to(device)
    mask = enc.attention_mask.bool()

    def base():
        with torch.inference_mode():
            model(**enc)

    def hooked():
        seeds = [token_seed(0, ids[m]) for ids, m in zip(enc.input_ids, mask, strict=True)]
        with torch.inference_mode(), corrupt_embeddings(model, mask, "rand_noise_first_n", 1.0, hidden,
                                                        row_seeds=seeds):
            model(**enc)

    emb = model.get_input_embeddings()(enc.input_ids).detach()

    def corrupt_only():  # what EcoGuard does: per-row seeds from the prompt tokens, row-wise corruption
        seeds = [token_seed(0, ids[m]) for ids, m in zip(enc.input_ids, mask, strict=True)]
        apply_rowwise("rand_noise_first_n", emb, mask, 1.0, hidden, seeds)

    def corrupt_batched():  # one generator for the whole batch (hooks' plain mode)
        apply_corruption("rand_noise_first_n", emb, mask, 1.0, hidden, torch.Generator().manual_seed(0))

    t_base, _, t_hook_extra = paired(base, hooked, reps)
    t_corrupt = timed(corrupt_only, reps)
    t_batched = timed(corrupt_batched, reps)
    return {"model": name, "params": n_params(model), "tokens": int(enc.input_ids.numel()),
            "base_forward_s": t_base, "corrupt_op_s": t_corrupt, "corrupt_batched_s": t_batched, "hooked_minus_base_s": t_hook_extra,
            "guard_extra_fraction": (clf_seconds + t_corrupt) / t_base,
            "corrupt_fraction": t_corrupt / t_base}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--sizes", default=",".join(SIZES))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args()
    from forgetlab.testing.tiny_lm import build_tokenizer

    forget, retain, batch = prompts(args.batch)
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, batch {args.batch} prompts")
    _, cres = classifier_bench(batch, forget, retain, args.reps)
    for key, val in cres.items():
        print(f"classifier {key}: {val:.1f}" if isinstance(val, float) else f"classifier {key}: {val}")
    clf_seconds = args.batch / cres.get("prompts_per_s_cascade", cres.get("prompts_per_s_minilm", float("inf")))
    tok = build_tokenizer([" ".join(forget + retain + batch)], vocab_size=512)
    rows = []
    print(f"{'model':>8} {'params':>12} {'base fwd s':>11} {'corrupt op s':>13} {'hook-base s':>12} "
          f"{'corrupt/base':>13} {'guard/base':>11}")
    for name in args.sizes.split(","):
        r = model_bench(name, tok, batch, clf_seconds, args.reps, args.device)
        rows.append(r)
        print(f"{r['model']:>8} {r['params']:>12,} {r['base_forward_s']:>11.4f} {r['corrupt_op_s']:>13.5f} "
              f"{r['hooked_minus_base_s']:>12.4f} {r['corrupt_fraction']:>13.4%} {r['guard_extra_fraction']:>11.2%}")
    big = max(rows, key=lambda r: r["params"])
    sec_per_param = big["base_forward_s"] / big["params"]  # base time ~ proportional to parameters
    t_1b = sec_per_param * 1e9
    frac_1b = (clf_seconds + big["corrupt_op_s"]) / t_1b
    print(f"extrapolated 1B-parameter forward on this batch: {t_1b:.2f} s; guard extra / base = {frac_1b:.2%} "
          f"(classifier {clf_seconds:.3f} s + corruption {big['corrupt_op_s']:.4f} s; corruption grows with the "
          f"hidden size only, the classifier not at all)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"classifier": cres, "models": rows, "extrapolated_1b": {"base_forward_s": t_1b,
                                                                                "guard_extra_fraction": frac_1b}},
                      fh, indent=2)


if __name__ == "__main__":
    main()

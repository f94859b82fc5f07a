"""ECO guard overhead, measured in one run: classifier throughput, guard cost vs the base forward, scaling.

Prints, on a batch of ``--batch`` prompts (default 64):
- classifier prompts per second (``forgetlab.eco.classify.prompt.PromptClassifier`` fitted here on synthetic prompts;
  with and without its n-gram first stage);
- for causal LMs built from configs (random weights; timing only) from tiny to >= 100M parameters: the base
  forward time on the batch, the corruption cost (the guard's row-wise corruption op alone, the batched op, and
  hooked minus plain forward, paired), and
  the guard's extra time (classify + corrupt) as a fraction of the base forward;
- the extrapolation of that fraction to a 1B-parameter forward (base time fitted as proportional to parameters).

Every time is a median with min-max over interleaved rounds (benchmarks/discipline.py: the compared calls of one
model alternate, the load is recorded around each round, contended rounds are marked).

Usage: ``HF_HUB_OFFLINE=1 python benchmarks/eco_overhead.py [--batch 64] [--rounds 5] [--device cpu] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from discipline import Result, Variant, command_line, run_rounds, stderr, write_result

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


def synced(fn):
    """``fn`` followed by a device synchronization (so a GPU's queued work is timed)."""
    def run():
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
    return run


def classifier_bench(batch: list[str], forget: list[str], retain: list[str], rounds: int) -> tuple[Result, dict]:
    """The fitted classifier's prompts/s on the batch, MiniLM on every prompt vs with its first stage."""
    from forgetlab.eco.classify.prompt import PromptClassifier

    t0 = time.perf_counter()
    clf = PromptClassifier.fit(forget, retain, fpr=0.05, seed=0)
    info = {"fit_seconds": time.perf_counter() - t0, "flagged_in_batch": int(clf.flag(batch).sum())}
    vs = [Variant("minilm", lambda: clf.score(batch, first_stage=False), len(batch), "prompts")]
    if getattr(clf, "ngram", None) is not None and getattr(clf, "ngram_threshold", None) is not None:
        vs.append(Variant("cascade", lambda: clf.score(batch), len(batch), "prompts"))
    return run_rounds(vs, rounds=rounds, log=stderr), info


def model_bench(name: str, tok, batch: list[str], clf_seconds: float, rounds: int, device: str) -> tuple[Result, dict]:
    """Base forward, hooked forward and the corruption op alone on one model size, interleaved."""
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

    res = run_rounds([Variant("base", synced(base)), Variant("hooked", synced(hooked)),
                      Variant("corrupt_op", synced(corrupt_only)), Variant("corrupt_batched", synced(corrupt_batched))],
                     rounds=rounds, log=stderr)
    med = {v: res.summary(v)["seconds"]["median"] for v in res.variants}
    hooked_extra = res.ratio("base", "hooked")  # rate ratio = hooked seconds / base seconds
    return res, {"model": name, "params": n_params(model), "tokens": int(enc.input_ids.numel()),
                 "base_forward_s": med["base"], "corrupt_op_s": med["corrupt_op"],
                 "corrupt_batched_s": med["corrupt_batched"], "hooked_over_base": hooked_extra,
                 "guard_extra_fraction": (clf_seconds + med["corrupt_op"]) / med["base"],
                 "corrupt_fraction": med["corrupt_op"] / med["base"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (>= 5)")
    ap.add_argument("--sizes", default=",".join(SIZES))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", type=Path, default=None, help="write the result JSON here")
    args = ap.parse_args(argv)
    from forgetlab.testing.tiny_lm import build_tokenizer

    forget, retain, batch = prompts(args.batch)
    stderr(f"device {args.device}, torch threads {torch.get_num_threads()}, batch {args.batch} prompts")
    cres, cinfo = classifier_bench(batch, forget, retain, args.rounds)
    best = "cascade" if "cascade" in cres.variants else "minilm"
    clf_seconds = cres.summary(best)["seconds"]["median"]
    tok = build_tokenizer([" ".join(forget + retain + batch)], vocab_size=512)
    results, rows = {"classifier": cres}, []
    for name in args.sizes.split(","):
        results[name], row = model_bench(name, tok, batch, clf_seconds, args.rounds, args.device)
        rows.append(row)
    big = max(rows, key=lambda r: r["params"])
    t_1b = big["base_forward_s"] / big["params"] * 1e9  # base time ~ proportional to parameters
    derived = {"classifier": cinfo | {"path timed for the guard": best}, "models": rows,
               "extrapolated_1b": {"base_forward_s": t_1b,
                                   "guard_extra_fraction": (clf_seconds + big["corrupt_op_s"]) / t_1b}}
    doc = write_result(args.out, name="eco_overhead", command=command_line(), results=results,
                       config={k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                       derived=derived)
    print(json.dumps(doc["derived"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What each of ECO's corruption candidates reaches on the bench's world, per seed, and why none reaches more.

For one seed of the unlearning bench (default scale, name-free answers; its cached target, retain and reseeded
retain models), every candidate of :data:`forgetlab.eco.select.ECO_CANDIDATES` is fitted alone on the fit set by
the holdout surrogate (its strength minimizing the distance to never-seen authors; no evaluation item, no retain
model) and then scored on forget05 and forget10 with every forget item flagged (the corruption isolated from the
flag rule): forget quality against the split's retain model. Beside them, measured on the evaluation split and
never used to fit anything, the ceilings that explain the numbers:

- ``retain, another seed``: a second retain model (training seed + 1000) against the first;
- ``name -> never-seen name`` / ``no question``: the *uncorrupted* target asked with the forget author's name
  replaced in the text by a never-seen author's, or with an empty question. These are perfect name-hiding
  corruptions; if the target still differs from the retain model under them, the difference lives in what the
  target assigns to the answers themselves, which no change to the prompt can remove.

With ``--level prompt`` the candidates corrupt every prompt token but the last (ECO's whole-prompt policy, the
bench's ``--prompt-level``) instead of the forget name's tokens.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/eco_candidates.py --seed K --out docs/benchmarks/eco_candidates/seedK.json
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/eco_candidates.py --seed K --level prompt --out docs/benchmarks/eco_candidates/prompt_seedK.json
    python benchmarks/eco_candidates.py --render docs/benchmarks/eco_candidates/*seed*.json   # the Markdown table
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

SPLITS = ("forget05", "forget10")


def _say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _tr(model, tok, items, corruption=None) -> np.ndarray:
    from forgetlab.unlearning.evaluate import qa_scores
    from forgetlab.unlearning.metrics import truth_ratio

    q = qa_scores(model, tok, items, corruption)
    return truth_ratio(q["para"], q["pert"])


def _fits(ctx, fitter) -> dict:
    """Every candidate fitted alone by the holdout surrogate: (strength, distance, evaluations)."""
    from forgetlab.eco.classify.token import TokenClassifier
    from forgetlab.eco.select import ECO_CANDIDATES, select_corruption

    tc = TokenClassifier.fit(sorted({r["entity"] for r in ctx.fit_items}))
    out = {}
    for name in ECO_CANDIDATES:
        t0 = time.perf_counter()
        _n, _s, rec = select_corruption(lambda n, s: fitter._score("deployment", tc, n, s), fitter.holdout,
                                        candidates=(name,), max_evals=ctx.scale.fit_max_evals)
        out[name] = {**rec["candidates"][name], "seconds": time.perf_counter() - t0}
        _say(f"fit {name}: strength {out[name]['strength']:.4g}, distance {out[name]['distance']:.3f}")
    return out


def _split(ctx, split: str, fits: dict) -> dict:
    """One split: each candidate's forget quality (all items flagged) and the ceilings."""
    from forgetlab.eco.classify.token import TokenClassifier
    from forgetlab.unlearning.lm import load_lm
    from forgetlab.unlearning.metrics import forget_quality

    world, tok = ctx.world, ctx.tokenizer
    items = world.forget(split)
    retain_tr = _tr(load_lm(ctx.models.retain[split])[0], tok, items)
    fq = lambda tr: forget_quality(tr, retain_tr)  # noqa: E731
    tc = TokenClassifier.fit(list(world.splits[split]))
    flags = np.ones(len(items), bool)
    cands = {n: fq(_tr(ctx.target, tok, items, ctx.corruption(n, f["strength"], flags, "deployment", tc)))
             for n, f in fits.items()}
    unseen = list(world.holdout)
    names = sorted({r["entity"] for r in items})
    swap = {e: unseen[i % len(unseen)] for i, e in enumerate(names)}
    renamed = [dict(r, question=r["question"].replace(r["entity"], swap[r["entity"]])) for r in items]
    ceilings = {"retain, another seed": fq(_tr(load_lm(ctx.models.retain_reseeded[split])[0], tok, items)),
                "target, name -> never-seen name": fq(_tr(ctx.target, tok, renamed)),
                "target, no question": fq(_tr(ctx.target, tok, [dict(r, question="") for r in items])),
                "target, uncorrupted": fq(_tr(ctx.target, tok, items))}
    return {"items": len(items), "candidates": cands, "ceilings": ceilings}


def run(seed: int, level: str = "entity") -> dict:
    import torch

    from forgetlab.runs import run_record
    from forgetlab.unlearning.bench.eco import CorruptionFit
    from forgetlab.unlearning.bench.machine import load_average, machine_record
    from forgetlab.unlearning.bench.run import _context, seeded
    from forgetlab.unlearning.bench.scale import scale_config
    from forgetlab.unlearning.world import make_world

    machine = machine_record()
    t0 = time.perf_counter()
    s = seeded(scale_config("default", "name-free"), seed)
    world = make_world(s.world)
    ctx = _context(world, s, "name-free", None, None, seed, level == "entity", True, {}, reseeded=True)
    fitter = CorruptionFit(ctx)
    fits = _fits(ctx, fitter)
    splits = {sp: _split(ctx, sp, fits) for sp in SPLITS}
    machine.update(load_average_end=load_average(), torch_threads=torch.get_num_threads())
    return {**run_record({"seed": seed, "scale": "default", "answers": "name-free", "splits": list(SPLITS),
                          "level": level},
                         seed=seed), "machine": machine, "fits": fits, "splits": splits,
            "seconds": time.perf_counter() - t0}


def render(records: list[dict]) -> str:
    """One Markdown table: rows = candidates (per corruption level) and ceilings, columns = split x seed."""
    levels = list(dict.fromkeys(r["config"].get("level", "entity") for r in records))
    by = {(r["config"].get("level", "entity"), r["config"]["seed"]): r for r in records}
    seeds = sorted({r["config"]["seed"] for r in records})
    cols = [(sp, k) for sp in SPLITS for k in seeds]
    lines = ["| | " + " | ".join(f"{sp} seed {k}" for sp, k in cols) + " | mean forget05 | mean forget10 |",
             "|" + "---|" * (len(cols) + 3)]

    def line(label: str, level: str, get) -> str:
        vals = {(sp, k): get(by[(level, k)]["splits"][sp]) if (level, k) in by else float("nan") for sp, k in cols}
        means = [np.mean([vals[(sp, k)] for k in seeds]) for sp in SPLITS]
        return f"| {label} | " + " | ".join(f"{vals[c]:.3g}" for c in cols) + " | " + " | ".join(
            f"{m:.3g}" for m in means) + " |"

    for level in levels:
        where = "forget-name tokens" if level == "entity" else "whole prompt"
        first = next(r for r in records if r["config"].get("level", "entity") == level)
        for name in first["fits"]:
            strengths = ", ".join(f"{by[(level, k)]['fits'][name]['strength']:.3g}" if (level, k) in by else "-"
                                  for k in seeds)
            lines.append(line(f"ECO {name}, {where} (fitted strength per seed: {strengths})", level,
                              lambda sp, n=name: sp["candidates"][n]))
    for c in records[0]["splits"][SPLITS[0]]["ceilings"]:
        lines.append(line(f"*{c}*", levels[0], lambda sp, c=c: sp["ceilings"][c]))
    runs = "; ".join(f"{r['config'].get('level', 'entity')} seed {r['config']['seed']}: {r['machine']['date_utc']}, "
                     f"{r['seconds']:.0f} s, {r['machine']['torch_threads']} thread(s), load "
                     f"{r['machine']['load_average'][0]:.1f} -> {r['machine']['load_average_end'][0]:.1f}"
                     for r in sorted(records, key=lambda r: (r["config"].get("level", "entity"), r["config"]["seed"])))
    return "\n".join(lines) + f"\n\nForget quality (KS p-value vs the split's retain model). Runs: {runs}."


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0, help="The bench seed (its world and models).")
    ap.add_argument("--level", choices=("entity", "prompt"), default="entity",
                    help="Corrupt the forget-name tokens (the bench's default) or the whole prompt.")
    ap.add_argument("--out", type=Path, help="Where to write the seed's JSON record.")
    ap.add_argument("--render", nargs="+", type=Path, help="Print the Markdown table of these records.")
    a = ap.parse_args(argv)
    if a.render:
        print(render([json.loads(p.read_text()) for p in a.render]))
        return 0
    if a.out is None:
        ap.error("--out is required (or --render)")
    from forgetlab.runs import atomic_write_json

    atomic_write_json(a.out, run(a.seed, a.level))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

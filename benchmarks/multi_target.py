"""Sustainability of a many-target guard (MUSE's sustainability idea, ECO's guard): forget requests arrive one
after another; after each is added as a target, are the earlier targets still forgotten and is utility kept?

On the synthetic world of the unlearning bench (its cached target model and the forget10 retain model), the
forget10 authors are split into ``--targets`` groups, one forget request each. Each target gets its own prompt
classifier (MiniLM, its authors' questions vs every other trained author's), its own token classifier (its
authors' names: flag rule = classifier OR name match, only name tokens corrupted) and its own corruption and
strength, chosen on its own group of *fit* authors (trained authors no evaluation sees) by the bench's holdout
surrogate (:func:`forgetlab.eco.select.select_corruption`: per candidate, the strength whose fit-author truth
ratios and answer probabilities are closest, as distributions, to never-seen holdout authors', then the closest
candidate); no evaluation item enters any fit.

Measured, with teacher-forced scores and generation through the guard (deployment protocol: prompts corrupted,
answers never): for each target alone (the single-target band) and after each addition, every earlier target's
TOFU forget quality against the forget10 retain model (which never saw any of the targets) and the model
utility. A number "stays in the band" when it is at least the lowest single-target value (forget quality) or
inside the single-target range (utility).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/multi_target.py --scale default --targets 5 --out DIR
    .venv/bin/python benchmarks/multi_target.py --render DIR/results.json   # the Markdown table for the docs
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from forgetlab.eco.classify.prompt import PromptClassifier
from forgetlab.eco.classify.token import TokenClassifier
from forgetlab.eco.corrupter import Corrupter
from forgetlab.eco.guard import EcoGuard, GuardConfig
from forgetlab.eco.select import Surrogate, select_corruption
from forgetlab.eco.targets import Target
from forgetlab.runs import atomic_write_json, atomic_write_text, run_record
from forgetlab.unlearning.bench.models import build_models
from forgetlab.unlearning.bench.scale import scale_config
from forgetlab.unlearning.bench.splits import eval_and_fit_splits
from forgetlab.unlearning.evaluate import EvalData, compare, evaluate_model, qa_scores
from forgetlab.unlearning.lm import load_lm
from forgetlab.unlearning.metrics import truth_ratio
from forgetlab.unlearning.scoring import Corruption
from forgetlab.unlearning.world import make_world


def _say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _fit_corruption(model, tok, items, hidden: int, holdout: Surrogate, seed: int, max_evals: int) -> dict:
    """The corruption and strength the holdout surrogate picks on ``items`` (the fit authors' names' tokens
    corrupted, as the target's will be)."""
    tc = TokenClassifier.fit(sorted({r["entity"] for r in items}))

    def score(name: str, strength: float):
        corrupter = Corrupter(tok, GuardConfig(name, float(strength), hidden, seed, entity_tokens=True), tc)
        q = qa_scores(model, tok, items, Corruption(corrupter, np.ones(len(items), bool)))
        return np.exp(q["answer"]), truth_ratio(q["para"], q["pert"])

    name, strength, rec = select_corruption(score, holdout, max_evals=max_evals)
    best = rec["candidates"][name]
    return {"corruption": name, "strength": strength, "metric": best["prob"], "target": holdout.mean_prob,
            "ks_statistic": best["ks_statistic"], "candidates": rec["candidates"], "fit_set_size": len(items)}


def _targets(world, s, model, tok, fit_items, holdout: Surrogate, k: int, seed: int) -> list[Target]:
    """One target per group of forget10 authors, each fitted on its own group of fit authors."""
    groups = [list(g) for g in np.array_split(np.array(world.splits["forget10"]), k)]
    fit_authors = sorted({r["entity"] for r in fit_items})
    fit_groups = [list(g) for g in np.array_split(np.array(fit_authors), k)]
    if min(len(g) for g in fit_groups) == 0:
        raise SystemExit(f"--targets {k}: only {len(fit_authors)} fit authors; use fewer targets")
    forget10 = set(world.splits["forget10"])
    others = [r["question"] for n in world.trained_authors(exclude=forget10) for r in world.authors[n]]
    others += [r["question"] for r in world.painters + world.world_facts]
    hidden = int(model.config.hidden_size)
    out = []
    for i, (names, fit_names) in enumerate(zip(groups, fit_groups, strict=True)):
        _say(f"target {i}: classifier for {', '.join(names)}")
        forget_q = [r["question"] for n in names for r in world.authors[n]]
        clf = PromptClassifier.fit(forget_q, others, fpr=s.classifier_fpr, seed=seed + i)
        tc = TokenClassifier.fit(names, retain=others, fallback="all")
        fit = _fit_corruption(model, tok, world.items(fit_names), hidden, holdout, seed + i, s.fit_max_evals)
        _say(f"target {i}: {fit['corruption']} at {fit['strength']:.3g} (fit metric {fit['metric']:.3f} vs "
             f"{holdout.mean_prob:.3f})")
        cfg = GuardConfig(fit["corruption"], float(fit["strength"]), hidden, seed + i, flag_entities=True,
                          entity_tokens=True)
        out.append(Target(f"t{i}", clf, cfg, tc, {**fit, "authors": names, "fit_authors": fit_names}))
    return out


def _guard(model, tok, targets: list[Target]) -> EcoGuard:
    first = targets[0]
    g = EcoGuard(model, tok, first.classifier, first.config, token_classifier=first.token_classifier,
                 fit=first.fit, name=first.name)
    for t in targets[1:]:
        g.add_target(t)
    return g


def _evaluate(guard, model, tok, data: EvalData, s, utility=None):
    return evaluate_model(model, tok, data, guard=guard, flagger=guard.classify, max_new_tokens=s.max_new_tokens,
                          utility=utility)


def run(scale: str, k: int, out: Path, seed: int, cache: str | None) -> dict:
    """The whole measurement; returns the record written to ``out/results.json``."""
    t0 = time.perf_counter()
    s = replace(scale_config(scale, "name-free"), splits=("forget10",))
    world = make_world(s.world)
    models = build_models(world, s, cache)
    model, tok = load_lm(models.target)
    retain_model, _ = load_lm(models.retain["forget10"])
    retain_eval, fit_items, holdout_fit, holdout_eval = eval_and_fit_splits(world, s)
    hs = qa_scores(model, tok, holdout_fit)
    holdout = Surrogate(np.exp(hs["answer"]), truth_ratio(hs["para"], hs["pert"]))
    targets = _targets(world, s, model, tok, fit_items, holdout, k, seed)
    data = [EvalData([r for n in t.fit["authors"] for r in world.authors[n]], holdout_eval, retain_eval,
                     world.painters, world.world_facts).validate() for t in targets]
    _say("retain model and target model on every target's forget set")
    ret = [evaluate_model(retain_model, tok, d, max_new_tokens=s.max_new_tokens) for d in data]
    base = [evaluate_model(model, tok, d, max_new_tokens=s.max_new_tokens) for d in data]
    rows = []
    for i, t in enumerate(targets):
        _say(f"single-target guard {t.name}")
        ev = _evaluate(_guard(model, tok, [t]), model, tok, data[i], s)
        rows.append({"guard": f"{t.name} alone", "n_targets": 1, "target": t.name,
                     "forget_quality": compare(ev, ret[i])["forget_quality"],
                     "model_utility": ev.summary["model_utility"], "forget_rouge": ev.summary["forget_Q_A_ROUGE"]})
    for n in range(2, k + 1):
        guard = _guard(model, tok, targets[:n])
        utility = None
        for i in range(n):
            _say(f"{n} targets: target {targets[i].name}")
            ev = _evaluate(guard, model, tok, data[i], s, utility)
            utility = ev.utility_parts
            rows.append({"guard": f"t0..t{n - 1}", "n_targets": n, "target": targets[i].name,
                         "forget_quality": compare(ev, ret[i])["forget_quality"],
                         "model_utility": ev.summary["model_utility"], "forget_rouge": ev.summary["forget_Q_A_ROUGE"]})
    ref = [{"target": t.name, "target_model_fq": compare(b, r)["forget_quality"],
            "target_model_utility": b.summary["model_utility"], "retain_rouge": r.summary["forget_Q_A_ROUGE"]}
           for t, b, r in zip(targets, base, ret, strict=True)]
    single = [r for r in rows if r["n_targets"] == 1]
    bands = {"forget_quality_min": min(r["forget_quality"] for r in single),
             "utility_min": min(r["model_utility"] for r in single),
             "utility_max": max(r["model_utility"] for r in single)}
    for r in rows:
        r["fq_in_band"] = r["forget_quality"] >= bands["forget_quality_min"]
        r["utility_in_band"] = bands["utility_min"] <= r["model_utility"] <= bands["utility_max"]
    config = {"scale": scale, "targets": k, "seed": seed, "threads": torch.get_num_threads(),
              "fits": {t.name: t.fit for t in targets}}
    rec = {**run_record(config, seed=seed), "rows": rows, "reference": ref, "bands": bands,
           "seconds": time.perf_counter() - t0}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", rec)
    atomic_write_text(out / "results.md", render(rec))
    return rec


def render(rec: dict) -> str:
    """The Markdown tables of a results record (the docs' table is this, generated)."""
    fmt = lambda x: f"{x:.3g}" if isinstance(x, float) else str(x)  # noqa: E731
    lines = [f"Scale `{rec['config']['scale']}`, {rec['config']['targets']} targets, seed {rec['config']['seed']}, "
             f"{rec['seconds']:.0f} s, torch threads {rec['config']['threads']}.", "",
             "| guard | targets | target scored | forget quality | FQ / FQ alone | model utility | forget ROUGE-L | "
             "FQ in band | utility in band |", "|---|---|---|---|---|---|---|---|---|"]
    alone = {r["target"]: r["forget_quality"] for r in rec["rows"] if r["n_targets"] == 1}
    for r in rec["rows"]:
        ratio = r["forget_quality"] / alone[r["target"]] if alone[r["target"]] > 0 else float("nan")
        lines.append(f"| {r['guard']} | {r['n_targets']} | {r['target']} | {fmt(r['forget_quality'])} | "
                     f"{ratio:.3f} | {fmt(r['model_utility'])} | {fmt(r['forget_rouge'])} | "
                     f"{'yes' if r['fq_in_band'] else 'no'} | {'yes' if r['utility_in_band'] else 'no'} |")
    b = rec["bands"]
    lines += ["", f"Bands (single-target guards): forget quality >= {fmt(b['forget_quality_min'])}, model utility "
              f"in [{fmt(b['utility_min'])}, {fmt(b['utility_max'])}].", "",
               "| target | corruption | fitted strength | fit metric / holdout | authors | unguarded target model FQ | "
              "target model utility | retain model forget ROUGE-L |", "|---|---|---|---|---|---|---|---|"]
    for ref in rec["reference"]:
        f = rec["config"]["fits"][ref["target"]]
        lines.append(f"| {ref['target']} | {f['corruption']} | {fmt(f['strength'])} | {fmt(f['metric'])} / "
                     f"{fmt(f['target'])} | "
                     f"{', '.join(f['authors'])} | {fmt(ref['target_model_fq'])} | "
                     f"{fmt(ref['target_model_utility'])} | {fmt(ref['retain_rouge'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default="tiny", help="tiny | default (the unlearning bench's scales)")
    ap.add_argument("--targets", type=int, default=3, help="forget requests added one after another")
    ap.add_argument("--out", type=Path, help="folder for results.json and results.md")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default=None, help="model cache (default $FORGETLAB_CACHE or ~/.cache/forgetlab)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--render", type=Path, help="print the Markdown of an earlier results.json and exit")
    a = ap.parse_args()
    if a.render is not None:
        print(render(json.loads(a.render.read_text())), end="")
        return
    if a.out is None or a.targets < 2:
        ap.error("--out is required and --targets must be >= 2")
    torch.set_num_threads(a.threads)
    print(render(run(a.scale, a.targets, a.out, a.seed, a.cache)), end="")


if __name__ == "__main__":
    main()

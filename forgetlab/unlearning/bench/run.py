"""``run_bench``: the whole results table, step by step, into ``results.json``, ``results.md``, ``tradeoff.png``.

Steps: build (or load from the cache) the world's models; per forget split, score the target and the retain
model, fit and score ECO (:mod:`.eco`), fine-tune and score each baseline; then the multiple-choice subjects
(:mod:`.mc`); then the tables (:mod:`.table`).
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from typing import Any

from ...eco.select import ECO_CANDIDATES
from ...errors import check_choice
from ...runs import atomic_write_json, atomic_write_text, prepare_out_dir, run_record
from ..baselines import METHODS
from ..evaluate import EvalData, Evaluation, compare
from ..lm import load_lm
from ..world import World, make_world
from .context import BenchContext
from .eco import CorruptionFit, eco_rows, flag_rule_negatives
from .heldout import FORGET_EVAL, FORGET_REQUEST, check_heldout
from .mc import MC_CHANCE, mc_rows
from .models import Progress, build_models
from .scale import scale_config
from .splits import eval_and_fit_splits, retain_fit_items
from .table import BenchResult, plot_tradeoff, results_markdown, row


def _check(scale: str, answers: str, methods: tuple[str, ...], splits: tuple[str, ...] | None):
    """The validated scale (restricted to ``splits``) before any work."""
    s = scale_config(scale, answers)
    if splits:
        for sp in splits:
            check_choice("splits", sp, s.splits)
        s = replace(s, splits=tuple(splits))
    for m in methods:
        check_choice("methods", m, ("eco", *METHODS))
    return s


def check_bench_heldout(world: World, s, methods: tuple[str, ...]) -> dict[str, Any]:
    """The held-out check of every split (:func:`~forgetlab.unlearning.bench.heldout.check_heldout`): the fit
    sets of the flag rule, the corruption and the baselines against the forget, utility and holdout items."""
    retain_eval, fit_items, holdout_fit, holdout_eval = eval_and_fit_splits(world, s)
    scored = {"utility (retain)": retain_eval, "utility (real authors)": world.painters,
              "utility (world facts)": world.world_facts, "MIA holdout": holdout_eval}
    record: dict[str, Any] = {}
    for split in s.splits:
        fits: dict[str, list] = {FORGET_REQUEST: world.forget(split)}
        if "eco" in methods:
            others, mc = flag_rule_negatives(world, retain_eval, split)
            fits.update({"flag-rule negatives": others + mc, "corruption fit set": fit_items,
                         "corruption surrogate": holdout_fit})
        if any(m != "eco" for m in methods):
            fits["baseline retain set"] = retain_fit_items(world, retain_eval)
        record[split] = check_heldout(fits, {FORGET_EVAL: world.forget(split), **scored})
    return record


def _context(world: World, s, answers: str, cache_dir, progress: Progress | None, seed: int, entity_level: bool,
             flag_entities: bool, timings: dict[str, float]) -> BenchContext:
    """Build the world's models (timed) and the shared state of the steps."""
    t0 = time.perf_counter()
    models = build_models(world, s, cache_dir, progress)
    timings["models"] = time.perf_counter() - t0
    for k, rec in models.records.items():
        timings[f"models/{k}"] = rec["load_or_train_seconds"]
    target, tok = load_lm(models.target)
    retain_eval, fit_items, holdout_fit, holdout_eval = eval_and_fit_splits(world, s)
    return BenchContext(s, world, models, target, tok, retain_eval, retain_fit_items(world, retain_eval),
                        fit_items, holdout_fit, holdout_eval,
                        answers, seed, entity_level, flag_entities, progress or (lambda *_a: None), progress,
                        timings)


def _reference_rows(ctx: BenchContext, split: str, data: EvalData) -> tuple[list[dict[str, Any]], Evaluation]:
    """The target's and the retain model's rows; returns the retain model's evaluation for comparisons."""
    step = f"{split}: evaluate target and retain"
    ctx.say(step, 0, 2)
    t0 = time.perf_counter()
    ev_target = ctx.evaluate(ctx.target, data, utility=ctx.target_utility)
    ctx.target_utility = ev_target.utility_parts
    t_target = time.perf_counter() - t0
    ctx.say(step, 1, 2)
    retain_model, _ = load_lm(ctx.models.retain[split])
    t0 = time.perf_counter()
    ev_retain = ctx.evaluate(retain_model, data)
    t_retain = time.perf_counter() - t0
    ctx.say(step, 2, 2)
    rows = [row(split, "target", "-", ev_target.summary, compare(ev_target, ev_retain), t_target),
            row(split, "retain", "-", ev_retain.summary, compare(ev_retain, ev_retain), t_retain)]
    return rows, ev_retain


def _baseline_row(ctx: BenchContext, split: str, method: str, data: EvalData,
                  ev_retain: Evaluation) -> dict[str, Any]:
    """Fine-tune a copy of the target with ``method`` on the split's forget set and score it."""
    ctx.say(f"{split}: {method}", 0, 1)
    t0 = time.perf_counter()
    model, _ = load_lm(ctx.models.target)
    progress = ctx.progress
    rec = METHODS.get(method)().unlearn(
        model, ctx.tokenizer, ctx.world.forget(split), ctx.retain_fit,
        progress=(lambda i, n: progress(f"{split}: {method}", i, n)) if progress else None)
    e = ctx.evaluate(model, data)
    return row(split, method, "-", e.summary, compare(e, ev_retain), time.perf_counter() - t0, unlearn=rec)


def run_bench(out_dir: str | os.PathLike, scale: str = "tiny", answers: str = "name-free",
              methods: tuple[str, ...] = ("eco", "ga", "gd", "npo"), *, cache_dir: str | os.PathLike | None = None,
              overwrite: bool = False, progress: Progress | None = None, seed: int = 0,
              splits: tuple[str, ...] | None = None, entity_level: bool = True,
              flag_entities: bool = True) -> BenchResult:
    """Run the whole benchmark and write ``results.json``, ``results.md`` and ``tradeoff.png`` into ``out_dir``.

    ``splits`` restricts the scale's forget splits (and the retain models trained) to a subset.
    ``entity_level``: ECO corrupts only the forget-entity tokens of flagged prompts (token classifier) instead
    of every prompt token, in the fit, the scoring and the guard's generation alike. ``flag_entities``: a
    prompt is flagged when the classifier flags it OR it names a forget author (the entity matcher).
    """
    s = _check(scale, answers, methods, splits)
    t_all = time.perf_counter()
    world = make_world(s.world)
    timings = {"world": time.perf_counter() - t_all}
    heldout = check_bench_heldout(world, s, methods)  # before any folder is written or anything is fitted
    out = prepare_out_dir(out_dir, overwrite=overwrite)
    ctx = _context(world, s, answers, cache_dir, progress, seed, entity_level, flag_entities, timings)
    ctx.guards_dir = out / "guards"
    fitter = CorruptionFit(ctx) if "eco" in methods else None
    rows: list[dict[str, Any]] = []
    for split in s.splits:
        data = EvalData(ctx.world.forget(split), ctx.holdout_eval, ctx.retain_eval, ctx.world.painters,
                        ctx.world.world_facts).validate()
        ref, ev_retain = _reference_rows(ctx, split, data)
        rows += ref
        if fitter is not None:
            ctx.say(f"{split}: ECO classifier and fit", 0, 1)
            with ctx.timed(f"eco/{split}"):
                rows += eco_rows(ctx, split, data, ev_retain, fitter)
            ctx.say(f"{split}: ECO classifier and fit", 1, 1)
        for m in (m for m in methods if m != "eco"):
            with ctx.timed(f"{m}/{split}"):
                rows.append(_baseline_row(ctx, split, m, data, ev_retain))
    with ctx.timed("multiple_choice"):
        mcr = mc_rows(ctx, "eco" in methods)
    ctx.timings["total"] = time.perf_counter() - t_all
    config = {"scale": scale, "answers": answers, "methods": list(methods), "world": s.world, "lm": s.lm,
              "train": s.train, "splits": list(s.splits), "eco_candidates": list(ECO_CANDIDATES),
              "eco_fit": {k: v[2] for k, v in (fitter.records if fitter else {}).items()},
              "flag_entities": flag_entities, "mc_chance": MC_CHANCE, "heldout_check": heldout, "forget_subject": ctx.world.forget_subject,
              "fit_target_holdout_prob": fitter.holdout_prob if fitter else None, "entity_level": entity_level,
              "models": {"tokenizer": str(ctx.models.tokenizer), "target": str(ctx.models.target),
                         "retain": {k: str(v) for k, v in ctx.models.retain.items()}},
              "guards": {f"{r['split']}/{r['protocol']}": r["guard"] for r in rows if r.get("guard")}}
    files = {"json": out / "results.json", "md": out / "results.md", "png": out / "tradeoff.png"}
    atomic_write_json(files["json"], {**run_record(config, seed=seed), "rows": rows, "mc_rows": mcr,
                                      "timings": ctx.timings, "training": ctx.models.records})
    atomic_write_text(files["md"], results_markdown(rows, mcr, ctx.timings, config))
    plot_tradeoff(rows, files["png"])
    return BenchResult(rows, mcr, ctx.timings, files, config)

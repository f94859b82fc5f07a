"""``run_bench``: the whole results table, step by step, into ``results.json``, ``results.md``, ``tradeoff.png``.

Steps: build (or load from the cache) the world's models; per forget split, score the target and the retain
model, fit and score ECO (:mod:`.eco`), fine-tune and score each baseline; then the multiple-choice subjects
(:mod:`.mc`); then the tables (:mod:`.table`).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ...eco.select import ECO_CANDIDATES
from ...errors import BadInput, check_choice
from ...runs import atomic_write_json, atomic_write_text, prepare_out_dir, run_record
from ..baselines import METHODS, UnlearnConfig
from ..evaluate import EvalData
from ..lm import load_lm
from ..world import World, make_world
from .context import BenchContext
from .eco import CorruptionFit, eco_rows, flag_rule_extra, flag_rule_negatives
from .heldout import FORGET_EVAL, FORGET_REQUEST, check_heldout
from .machine import load_average, machine_record
from .mc import MC_CHANCE, mc_rows
from .models import Progress, build_models
from .reference import RESEED_OFFSET, RESEEDED, Reference
from .report import render_report
from .scale import Scale, scale_config
from .splits import eval_and_fit_splits, retain_fit_items
from .summary import summarize
from .table import BenchResult, plot_tradeoff, row
from .tune import BaselineTuner, tuning_sets


def check_options(scale: str, answers: str, methods: tuple[str, ...], splits: tuple[str, ...] | None):
    """The validated scale (restricted to ``splits``) before any work."""
    s = scale_config(scale, answers)
    if splits:
        for sp in splits:
            check_choice("splits", sp, s.splits)
        s = replace(s, splits=tuple(splits))
    for m in methods:
        check_choice("methods", m, ("eco", *METHODS))
    return s


def check_bench_heldout(world: World, s, methods: tuple[str, ...], seed: int = 0,
                        tune: bool = True) -> dict[str, Any]:
    """The held-out check of every split (:func:`~forgetlab.unlearning.bench.heldout.check_heldout`): the fit
    sets of the flag rule, the corruption, the baselines and (with ``tune``) the baselines' tuning against the
    forget, utility and holdout items."""
    retain_eval, fit_items, holdout_fit, holdout_eval = eval_and_fit_splits(world, s)
    scored = {"utility (retain)": retain_eval, "utility (real authors)": world.painters,
              "utility (world facts)": world.world_facts, "MIA holdout": holdout_eval}
    record: dict[str, Any] = {}
    for split in s.splits:
        fits: dict[str, list] = {FORGET_REQUEST: world.forget(split)}
        if "eco" in methods:
            others, mc = flag_rule_negatives(world, retain_eval, split)
            swapped = flag_rule_extra(world, retain_eval, split, seed, s.classifier_fpr).negatives
            fits.update({"flag-rule negatives": others + mc, "corruption fit set": fit_items,
                         "flag-rule unseen-entity negatives": [{"question": p} for v in swapped.values() for p in v],
                         "corruption surrogate": holdout_fit})
        if any(m != "eco" for m in methods):
            fits["baseline retain set"] = retain_fit_items(world, retain_eval)
            if tune:
                ts = tuning_sets(world, retain_eval, fit_items, s.tune_floor_share)
                fits.update({"baseline tuning proxy forget set": ts.forget, "baseline tuning retain set": ts.retain,
                             "baseline tuning floor set": ts.floor, "baseline tuning surrogate": holdout_fit})
        record[split] = check_heldout(fits, {FORGET_EVAL: world.forget(split), **scored})
    return record


def _context(world: World, s, answers: str, cache_dir, progress: Progress | None, seed: int, entity_level: bool,
             flag_entities: bool, timings: dict[str, float], reseeded: bool = False) -> BenchContext:
    """Build the world's models (timed) and the shared state of the steps."""
    t0 = time.perf_counter()
    models = build_models(world, s, cache_dir, progress, reseeded)
    timings["models"] = time.perf_counter() - t0
    for k, rec in models.records.items():
        timings[f"models/{k}"] = rec["load_or_train_seconds"]
    target, tok = load_lm(models.target)
    retain_eval, fit_items, holdout_fit, holdout_eval = eval_and_fit_splits(world, s)
    return BenchContext(s, world, models, target, tok, retain_eval, retain_fit_items(world, retain_eval),
                        fit_items, holdout_fit, holdout_eval,
                        answers, seed, entity_level, flag_entities, progress or (lambda *_a: None), progress,
                        timings)


def _reference_rows(ctx: BenchContext, split: str, data: EvalData) -> tuple[list[dict[str, Any]], Reference]:
    """The target's and the retain model's rows (and the reseeded retain model's, when trained: the ceiling of
    "never trained on the split"); returns the split's :class:`Reference` for the other rows."""
    step = f"{split}: evaluate target and retain"
    reseeded = ctx.models.retain_reseeded.get(split)
    n = 3 if reseeded else 2
    ctx.say(step, 0, n)
    t0 = time.perf_counter()
    ev_target = ctx.evaluate(ctx.target, data, utility=ctx.target_utility)
    ctx.target_utility = ev_target.utility_parts
    t_target = time.perf_counter() - t0
    ctx.say(step, 1, n)
    retain_model, _ = load_lm(ctx.models.retain[split])
    t0 = time.perf_counter()
    ev_retain = ctx.evaluate(retain_model, data)
    t_retain = time.perf_counter() - t0
    ref = Reference(ev_retain, retain_model, ctx.tokenizer, [r["question"] for r in data.forget])
    rows = [row(split, "target", "-", ev_target.summary, ref.compare(ev_target), t_target),
            row(split, "retain", "-", ev_retain.summary, ref.compare(ev_retain), t_retain)]
    ctx.say(step, 2, n)
    if reseeded:
        t0 = time.perf_counter()
        e = ctx.evaluate(load_lm(reseeded)[0], data)
        rows.append(row(split, RESEEDED, "-", e.summary, ref.compare(e), time.perf_counter() - t0,
                        train_seed=ctx.scale.train.seed + RESEED_OFFSET))
        ctx.say(step, 3, n)
    return rows, ref


def _baseline_row(ctx: BenchContext, split: str, method: str, data: EvalData, ref: Reference,
                  tuner: BaselineTuner | None) -> dict[str, Any]:
    """Fine-tune a copy of the target with ``method`` (at the tuned config, or the untuned default without
    ``tuner``) on the split's forget set and score it; the tuning's time is not in the row's ``seconds``."""
    config = tuner.config(method, len(ctx.world.forget(split))) if tuner is not None else UnlearnConfig()
    ctx.say(f"{split}: {method}", 0, 1)
    t0 = time.perf_counter()
    model, _ = load_lm(ctx.models.target)
    progress = ctx.progress
    rec = METHODS.get(method)(config).unlearn(
        model, ctx.tokenizer, ctx.world.forget(split), ctx.retain_fit,
        progress=(lambda i, n: progress(f"{split}: {method}", i, n)) if progress else None)
    e = ctx.evaluate(model, data)
    return row(split, method, "-", e.summary, ref.compare(e), time.perf_counter() - t0, unlearn=rec,
               tuned=tuner is not None)


def seeded(s: Scale, seed: int) -> Scale:
    """The scale with ``seed`` as the world's and the models' training seed (seed 0 is the scale as defined)."""
    return replace(s, world=replace(s.world, seed=seed), train=replace(s.train, seed=seed))


@dataclass
class SeedRun:
    """One seed's rows (each with ``seed``), multiple-choice rows, timings, training records and config part."""

    rows: list[dict[str, Any]]
    mc_rows: list[dict[str, Any]]
    timings: dict[str, float]
    training: dict[str, Any]
    config: dict[str, Any]


def _run_seed(world: World, s: Scale, seed: int, opts: dict[str, Any], guards_dir: Path,
              timings: dict[str, float]) -> SeedRun:
    """Every row of one seed: world, models, flag rules, corruption fits and baselines of that seed."""
    t0 = time.perf_counter()
    ctx = _context(world, s, opts["answers"], opts["cache_dir"], opts["progress"], seed, opts["entity_level"],
                   opts["flag_entities"], timings, opts["reseeded"])
    ctx.guards_dir = guards_dir
    methods = opts["methods"]
    fitter = CorruptionFit(ctx) if "eco" in methods else None
    tuner = BaselineTuner(ctx) if opts["tune"] and any(m != "eco" for m in methods) else None
    rows: list[dict[str, Any]] = []
    for split in s.splits:
        data = EvalData(ctx.world.forget(split), ctx.holdout_eval, ctx.retain_eval, ctx.world.painters,
                        ctx.world.world_facts).validate()
        ref_rows, ref = _reference_rows(ctx, split, data)
        rows += ref_rows
        if fitter is not None:
            ctx.say(f"{split}: ECO classifier and fit", 0, 1)
            with ctx.timed(f"eco/{split}"):
                rows += eco_rows(ctx, split, data, ref, fitter)
            ctx.say(f"{split}: ECO classifier and fit", 1, 1)
        for m in (m for m in methods if m != "eco"):
            if tuner is not None and m not in tuner.records:
                with ctx.timed(f"{m}/tune"):
                    tuner.config(m)
            with ctx.timed(f"{m}/{split}"):
                rows.append(_baseline_row(ctx, split, m, data, ref, tuner))
    with ctx.timed("multiple_choice"):
        mcr = mc_rows(ctx, "eco" in methods)
    ctx.timings["seed_total"] = time.perf_counter() - t0
    for r in rows + mcr:
        r["seed"] = seed
    config = {"eco_fit": {k: v[2] for k, v in (fitter.records if fitter else {}).items()},
              "baseline_tuning": tuner.records if tuner is not None else {},
              "forget_subject": ctx.world.forget_subject,
              "fit_target_holdout_prob": fitter.holdout.mean_prob if fitter else None,
              "models": {"tokenizer": str(ctx.models.tokenizer), "target": str(ctx.models.target),
                         "retain": {k: str(v) for k, v in ctx.models.retain.items()}},
              "guards": {f"{r['split']}/{r['protocol']}": r["guard"] for r in rows if r.get("guard")}}
    return SeedRun(rows, mcr, ctx.timings, ctx.models.records, config)


def run_bench(out_dir: str | os.PathLike, scale: str = "tiny", answers: str = "name-free",
              methods: tuple[str, ...] = ("eco", "ga", "gd", "npo", "rmu"), *, cache_dir: str | os.PathLike | None = None,
              overwrite: bool = False, progress: Progress | None = None, seeds: tuple[int, ...] = (0,),
              splits: tuple[str, ...] | None = None, entity_level: bool = True,
              flag_entities: bool = True, tune: bool = True, reseeded: bool = True) -> BenchResult:
    """Run the whole benchmark and write ``results.json``, ``results.md`` and ``tradeoff.png`` into ``out_dir``.

    Each of ``seeds`` runs its own world, models, flag rules and fits (seed 0: the scale as defined); the
    summary gives mean +- sd over them. ``splits`` restricts the scale's forget splits (and the retain models
    trained) to a subset. ``entity_level``: ECO corrupts only the forget-entity tokens of flagged prompts (token
    classifier) instead of every prompt token, in the fit, the scoring and the guard's generation alike.
    ``flag_entities``: a prompt is flagged when the classifier flags it OR it names a forget author. ``tune``:
    each baseline's lr and epochs are chosen per seed by the holdout surrogate (:mod:`.tune`); without it they
    run at :class:`~forgetlab.unlearning.baselines.UnlearnConfig`'s defaults. ``reseeded``: also train a second
    retain model per split with another training seed and report it as the row ``retain_reseed`` (forget quality
    of one never-trained model against another: the ceiling no method can be asked to pass). The held-out check of every seed
    (the tuning's sets included) runs before anything is written or fitted.
    """
    s = check_options(scale, answers, methods, splits)
    seeds = check_seeds(seeds)
    machine = machine_record()
    t_all = time.perf_counter()
    worlds = {k: make_world(seeded(s, k).world) for k in seeds}
    timings = {"world": time.perf_counter() - t_all}
    heldout = {str(k): check_bench_heldout(worlds[k], seeded(s, k), methods, k, tune) for k in seeds}
    out = prepare_out_dir(out_dir, overwrite=overwrite)
    opts = {"answers": answers, "cache_dir": cache_dir, "progress": progress, "entity_level": entity_level,
            "flag_entities": flag_entities, "methods": methods, "tune": tune, "reseeded": reseeded}
    runs: dict[int, SeedRun] = {}
    for k in seeds:  # the files are rewritten after every seed: a long run leaves the seeds it finished
        guards_dir = out / "guards" if len(seeds) == 1 else out / "guards" / f"seed{k}"
        runs[k] = _run_seed(worlds[k], seeded(s, k), k, opts, guards_dir, {})
        timings["total"] = time.perf_counter() - t_all
        machine["load_average_end"] = load_average()
        config = {**_config(s, scale, answers, methods, entity_level, flag_entities, heldout, runs), "tune": tune,
                  "reseeded_retain": reseeded,
                  "tuned_epochs": "matching updates"}
        res = _write(out, runs, {**config, "seeds_requested": list(seeds)}, machine, timings)
    return res


def check_seeds(seeds) -> tuple[int, ...]:
    """Distinct non-negative integer seeds, at least one, in the order given."""
    seeds = tuple(seeds)
    if not seeds or any(not isinstance(k, int) or k < 0 for k in seeds) or len(set(seeds)) != len(seeds):
        raise BadInput("seeds", list(seeds), "distinct integers >= 0, at least one (e.g. 0,1,2)")
    return seeds


def _config(s: Scale, scale: str, answers: str, methods, entity_level: bool, flag_entities: bool,
            heldout: dict[str, Any], runs: dict[int, SeedRun]) -> dict[str, Any]:
    """The run's config: the scale, the options, and each seed's part (the first seed's also at the top level,
    with every seed's guards, keyed ``seed<k>/<split>/<protocol>`` when there are several seeds)."""
    first = next(iter(runs.values())).config
    multi = len(runs) > 1
    guards = {(f"seed{k}/" if multi else "") + g: p for k, r in runs.items() for g, p in r.config["guards"].items()}
    return {"scale": scale, "answers": answers, "methods": list(methods), "world": s.world, "lm": s.lm,
            "train": s.train, "splits": list(s.splits), "seeds": list(runs), "eco_candidates": list(ECO_CANDIDATES),
            "flag_entities": flag_entities, "entity_level": entity_level, "mc_chance": MC_CHANCE,
            "heldout_check": heldout, **first, "guards": guards,
            "per_seed": {str(k): r.config for k, r in runs.items()}}


def _write(out: Path, runs: dict[int, SeedRun], config: dict[str, Any], machine: dict[str, Any],
           timings: dict[str, float]) -> BenchResult:
    """``results.json`` (rows of every seed, the summary over seeds, machine, timings), ``results.md`` rendered
    from it, and the figure."""
    rows = [r for run in runs.values() for r in run.rows]
    mcr = [r for run in runs.values() for r in run.mc_rows]
    seed_timings = {f"seed{k}/{n}": v for k, run in runs.items() for n, v in run.timings.items()}
    record = {**run_record(config, seeds=list(runs)), "machine": machine, "rows": rows, "summary": summarize(rows),
              "mc_rows": mcr, "timings": {**timings, **seed_timings},
              "training": {str(k): run.training for k, run in runs.items()}}
    return BenchResult(rows, mcr, record["timings"], write_bench_files(out, record), config)


def write_bench_files(out: Path, record: dict[str, Any]) -> dict[str, Path]:
    """``results.json`` (the record), ``results.md`` rendered from the file as written, and ``tradeoff.png``."""
    files = {"json": out / "results.json", "md": out / "results.md", "png": out / "tradeoff.png"}
    atomic_write_json(files["json"], record)
    atomic_write_text(files["md"], render_report(json.loads(files["json"].read_text())))
    plot_tradeoff(record["rows"], files["png"])
    return files

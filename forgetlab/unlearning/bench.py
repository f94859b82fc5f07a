"""The results table: target, retain, ECO (both protocols), GA, GD and NPO on every forget split.

``run_bench(out_dir, scale, answers, methods)`` builds (or loads from the cache) the world's models, evaluates
every method with :mod:`forgetlab.unlearning.evaluate`, and writes ``results.json``, ``results.md`` and
``tradeoff.png``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import check_choice
from .lm import LMConfig, TrainConfig, cached_lm, cached_tokenizer
from .world import World, WorldConfig, make_world

Progress = Callable[[str, int, int], None]  # (task, done, total)


@dataclass(frozen=True)
class Scale:
    """World, model and training sizes of one bench scale, and the forget splits it runs."""

    world: WorldConfig
    lm: LMConfig
    train: TrainConfig
    splits: tuple[str, ...]
    retain_eval_max: int = 200  # retain-author items scored for model utility
    max_new_tokens: int = 24
    classifier_fpr: float = 0.01  # requested FPR; split-conformal calibration needs >= 1/fpr - 1 prompts
    fit_max_evals: int = 24  # metric evaluations allowed to each strength fit


SCALES: dict[str, Scale] = {
    "tiny": Scale(WorldConfig(n_authors=20, facts_min=6, facts_max=8, n_painters=4, n_countries=4,
                              mc_per_subject=8),
                  LMConfig(hidden=64, layers=1, heads=4, intermediate=128, vocab_size=768),
                  TrainConfig(epochs=20, lr=1e-2, batch_size=64), ("forget10",), retain_eval_max=40,
                  max_new_tokens=16, classifier_fpr=0.05, fit_max_evals=8),
    "default": Scale(WorldConfig(), LMConfig(), TrainConfig(), ("forget01", "forget05", "forget10")),
}


def scale_config(scale: str, answers: str) -> Scale:
    check_choice("scale", scale, SCALES)
    s = SCALES[scale]
    return replace(s, world=replace(s.world, answer_style=answers).validate())


@dataclass
class Models:
    """Folders of the tokenizer, the target model and one retain model per split, with training records."""

    tokenizer: Path
    target: Path
    retain: dict[str, Path]
    records: dict[str, dict[str, Any]] = field(default_factory=dict)


def build_models(world: World, s: Scale, cache_dir: str | os.PathLike | None = None,
                 progress: Progress | None = None) -> Models:
    """Train (or load from the cache) the target model and the retain model of every split in ``s``."""
    tok_dir = cached_tokenizer(world.all_text(), s.lm.vocab_size, cache_dir)
    jobs = [("target", None)] + [(f"retain-{sp}", sp) for sp in s.splits]
    paths: dict[str, Path] = {}
    records: dict[str, dict[str, Any]] = {}
    for name, split in jobs:
        cb = (lambda i, n, _loss, name=name: progress(f"train {name}", i, n)) if progress else None
        t0 = time.perf_counter()
        path, rec = cached_lm(name, world.training_items(split), tok_dir, s.lm, s.train, cache_dir, cb)
        rec = dict(rec, load_or_train_seconds=time.perf_counter() - t0)
        paths[name], records[name] = path, rec
    return Models(tok_dir, paths["target"], {sp: paths[f"retain-{sp}"] for sp in s.splits}, records)


# --- ECO inside the benchmark ------------------------------------------------------------------------------

# Candidate corruptions, all on every hidden dim (k = hidden size). The fit keeps the one whose corrupted
# fit-set truth ratios are closest (KS statistic) to those of never-seen holdout authors; a candidate with a
# strength gets it from the bracketing root finder first (mean answer probability = the holdout's).
ECO_CANDIDATES: tuple[str, ...] = ("rand_noise_first_n", "zero_out_first_n", "flip_sign_first_n")
STRENGTH_MAX = 64.0  # noise std 64 (absolute) drowns any embedding; past it the bracket only burns evaluations
MC_CORRUPTION = "rand_noise_first_n"  # subject-level forgetting: the whole prompt, strength fitted to chance
ROW_FIELDS = ("split", "method", "protocol", "forget_quality", "model_utility", "forget_rouge",
              "forget_truth_ratio", "mia_auc", "privleak", "classifier_fpr", "classifier_fnr", "seconds")


@dataclass
class EcoSetup:
    """A fitted ECO for one forget target: the flag rule (prompt classifier, optionally OR an entity match),
    the token classifier, one corruption and strength per protocol, the fit records and the flag rule's rates
    on held-out paraphrases (``fpr``/``fnr``; ``classifier_fpr``/``classifier_fnr``: the classifier alone) and
    its false-positive rate on authors no part of the rule ever saw (``fpr_unseen``, ``classifier_fpr_unseen``;
    their words are not among the token classifier's known retain words either)."""

    rule: Any  # forgetlab.eco.guard.FlagRule: the classifier, the token classifier, whether names flag
    corruption: dict[str, str]
    strength: dict[str, float]
    fit: dict[str, dict[str, Any]]
    fpr: float
    fnr: float
    classifier_fpr: float
    classifier_fnr: float
    fpr_unseen: float
    classifier_fpr_unseen: float
    seconds: float


def _fit_splits(world: World, s: Scale) -> tuple[list[dict], list[dict], list[dict], list[dict]]:
    """(retain_eval, fit_items, holdout_fit, holdout_eval): disjoint author groups for utility, ECO's corruption
    fit (trained authors outside every forget split), the fit's surrogate target (holdout authors) and MIA."""
    ret = world.retain_authors()
    eval_items, fit_names = [], []
    for n in ret:
        if len(eval_items) < s.retain_eval_max:
            eval_items += world.authors[n]
        else:
            fit_names.append(n)
    fit_items = world.items(fit_names[-max(2, len(fit_names) // 3):]) if fit_names else world.items(ret[-2:])
    h = world.holdout
    half = max(1, len(h) // 2)
    return eval_items[: s.retain_eval_max], fit_items, world.items(h[:half]), world.items(h[half:])


# (corruption, strength) -> (mean normalized answer probability, per-item truth ratios) on the fit set
SurrogateScore = Callable[[str, float, bool], tuple[float, Any]]


def select_corruption(score: SurrogateScore, holdout_prob: float, holdout_tr, *,
                      candidates: tuple[str, ...] = ECO_CANDIDATES, tol: float = 0.02,
                      max_evals: int = 24) -> tuple[str, float, dict[str, Any]]:
    """Zeroth-order fit of ECO's corruption against the holdout surrogate (no retain model needed).

    For each candidate with a strength, the bracketing root finder sets the strength so that the fit set's mean
    normalized answer probability equals the holdout authors' (``holdout_prob``); then every candidate is scored
    by the two-sample KS statistic between the fit set's truth ratios under it and the holdout's
    (``holdout_tr``). Returns (corruption, strength, record of every candidate); the smallest statistic wins.
    ``score(name, strength, want_tr)`` returns (mean probability, truth ratios or None).
    """
    from scipy.stats import ks_2samp

    from ..eco.corruptions import get_corruption
    from ..eco.fit import fit_bracket

    record: dict[str, Any] = {"holdout_prob": holdout_prob, "candidates": {}}
    best: tuple[float, str, float] | None = None
    for name in candidates:
        entry: dict[str, Any] = {}
        strength = 1.0
        if get_corruption(name).uses_strength:
            res = fit_bracket(lambda st, _fs, name=name: score(name, st, False)[0], [name], holdout_prob,
                              lo=0.0, hi=0.5, tol=tol, max_evals=max_evals, hi_max=STRENGTH_MAX)
            strength = res.strength
            entry.update(n_evals=res.n_evals, converged=res.converged, prob=res.metric)
        prob, tr = score(name, strength, True)
        ks = ks_2samp(tr, holdout_tr)
        entry.update(strength=strength, prob=prob, ks_statistic=float(ks.statistic), ks_pvalue=float(ks.pvalue))
        record["candidates"][name] = entry
        if best is None or ks.statistic < best[0]:
            best = (float(ks.statistic), name, strength)
    assert best is not None
    record.update(corruption=best[1], strength=best[2], ks_statistic=best[0])
    return best[1], best[2], record


def setup_eco(forget_prompts: list[str], retain_prompts: list[str], forget_para: list[str],
              retain_para: list[str], entities: list[str], fit: Callable[[str], tuple[str, float, dict]],
              protocols: tuple[str, ...], *, unseen: list[str] | None = None, fpr: float = 0.01, seed: int = 0,
              flag_entities: bool = True) -> EcoSetup:
    """Train the prompt classifier (forget vs retain prompts), build the token classifier for the forget
    entities, measure the flag rule's FPR/FNR on held-out paraphrases, and fit the corruption of each protocol
    with ``fit(protocol)`` (on a fit set, never the evaluation split)."""
    import numpy as np

    from ..eco.classifier import PromptClassifier, TokenClassifier
    from ..eco.guard import FlagRule

    t0 = time.perf_counter()
    clf = PromptClassifier.fit(forget_prompts, retain_prompts, fpr=fpr, seed=seed)
    rule = FlagRule(clf, TokenClassifier.fit(entities, retain=retain_prompts, fallback="all"), flag_entities)

    def rates(prompts: list[str]) -> tuple[float, float]:
        """(flag rule, classifier alone) flagged fractions; the classifier runs once."""
        if not prompts:
            return float("nan"), float("nan")
        own, _scores, names = rule.parts(prompts)
        return float(np.mean(own | names)), float(np.mean(own))

    (f_rule, f_clf), (r_rule, r_clf), (u_rule, u_clf) = rates(forget_para), rates(retain_para), rates(unseen or [])
    corruption, strength, fits = {}, {}, {}
    for proto in protocols:
        corruption[proto], strength[proto], fits[proto] = fit(proto)
    return EcoSetup(rule, corruption, strength, fits, r_rule, 1 - f_rule, r_clf, 1 - f_clf, u_rule, u_clf,
                    time.perf_counter() - t0)


# --- the table ---------------------------------------------------------------------------------------------

@dataclass
class BenchResult:
    """Rows (dicts with :data:`ROW_FIELDS` and extras), the multiple-choice rows, timings and written files."""

    rows: list[dict[str, Any]]
    mc_rows: list[dict[str, Any]]
    timings: dict[str, float]
    files: dict[str, Path]
    config: dict[str, Any]


def _row(split: str, method: str, protocol: str, summary: dict, cmp: dict, seconds: float, **extra) -> dict:
    r = {"split": split, "method": method, "protocol": protocol,
         "forget_quality": cmp.get("forget_quality", float("nan")), "model_utility": summary["model_utility"],
         "forget_rouge": summary.get("forget_rouge", float("nan")),
         "forget_truth_ratio": summary["forget_truth_ratio"], "mia_auc": cmp.get("mia_auc", float("nan")),
         "privleak": cmp.get("privleak", float("nan")), "classifier_fpr": float("nan"),
         "classifier_fnr": float("nan"), "seconds": seconds}
    r.update({"retain_rouge": summary.get("retain_rouge"), "forget_prob": summary.get("forget_prob")})
    r.update(extra)
    return r


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
    import numpy as np

    from ..runs import atomic_write_json, atomic_write_text, prepare_out_dir, run_record
    from .baselines import METHODS, get_method
    from .evaluate import EvalData, compare, evaluate_model
    from .lm import load_lm, prompt_of
    from .scoring import Corruption, choice_logprobs, score_answers

    s = scale_config(scale, answers)
    if splits:
        for sp in splits:
            check_choice("splits", sp, s.splits)
        s = replace(s, splits=tuple(splits))
    known = ("eco", *METHODS)
    for m in methods:
        check_choice("methods", m, known)
    out = prepare_out_dir(out_dir, overwrite=overwrite)
    say = progress or (lambda *_a: None)
    timings: dict[str, float] = {}
    t_all = time.perf_counter()

    t0 = time.perf_counter()
    world = make_world(s.world)
    timings["world"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    models = build_models(world, s, cache_dir, progress)
    timings["models"] = time.perf_counter() - t0
    for k, rec in models.records.items():
        timings[f"models/{k}"] = rec["load_or_train_seconds"]

    retain_eval, fit_items, holdout_fit, holdout_eval = _fit_splits(world, s)
    target, tok = load_lm(models.target)
    d = target.config.hidden_size
    protocols = ("deployment", "paper")
    rows: list[dict[str, Any]] = []
    target_utility: dict[str, float] | None = None

    def ev(model, data, **kw):
        return evaluate_model(model, tok, data, max_new_tokens=s.max_new_tokens, **kw)

    # the surrogate of ECO's fit: never-seen (holdout) authors' mean normalized answer probability and truth ratios
    from .evaluate import qa_scores
    from .metrics import normalized_prob, truth_ratio
    hs = qa_scores(target, tok, holdout_fit)
    fit_target = float(np.mean(np.exp(hs["answer"])))
    holdout_tr = truth_ratio(hs["para"], hs["pert"])
    fit_records: dict[str, Any] = {}

    for split in s.splits:
        forget = world.forget(split)
        data = EvalData(forget, holdout_eval, retain_eval, world.painters, world.world_facts).validate()
        say(f"{split}: evaluate target and retain", 0, 1)
        t0 = time.perf_counter()
        ev_target = ev(target, data, utility=target_utility)
        target_utility = ev_target.utility_parts
        t_target = time.perf_counter() - t0
        retain_model, _ = load_lm(models.retain[split])
        t0 = time.perf_counter()
        ev_retain = ev(retain_model, data)
        t_retain = time.perf_counter() - t0
        del retain_model
        rows.append(_row(split, "target", "-", ev_target.summary, compare(ev_target, ev_retain), t_target))
        rows.append(_row(split, "retain", "-", ev_retain.summary, compare(ev_retain, ev_retain), t_retain))

        if "eco" in methods:
            say(f"{split}: ECO classifier and fit", 0, 1)
            f_authors = set(world.splits[split])
            forget_q = [r["question"] for r in forget]
            others = [r for n in world.trained_authors(exclude=f_authors) for r in world.authors[n]]
            others += world.painters + world.world_facts
            retain_q = [r["question"] for r in others] + [r["question"] for rows_ in world.mc.values()
                                                          for r in rows_]
            para_f = [r["paraphrased_question"] for r in forget]
            para_r = [r["paraphrased_question"] for r in others]

            def fit(proto: str, fit_items=fit_items) -> tuple[str, float, dict]:
                key = proto if answers == "tofu" else "deployment"  # name-free: both protocols score the same
                if key not in fit_records:  # the fit set is the same for every split: fit once per protocol
                    from ..eco.classifier import TokenClassifier
                    tc = TokenClassifier.fit(sorted({r["entity"] for r in fit_items}))
                    prompts = [prompt_of(r["question"]) for r in fit_items]

                    def score(name: str, strength: float, want_tr: bool):
                        c = Corruption(name, float(strength), np.ones(len(fit_items), bool), k=d, seed=seed,
                                       protocol=key, answer_entities=tc,
                                       prompt_entities=tc if entity_level else None)
                        if not want_tr:
                            sc = score_answers(target, tok, prompts, [r["answer"] for r in fit_items],
                                               corruption=c)
                            return float(np.mean(normalized_prob(sc.token_logprobs))), None
                        q = qa_scores(target, tok, fit_items, c)
                        return float(np.mean(np.exp(q["answer"]))), truth_ratio(q["para"], q["pert"])

                    name, st, rec = select_corruption(score, fit_target, holdout_tr, max_evals=s.fit_max_evals)
                    rec.update(fit_set_size=len(fit_items), holdout_size=len(holdout_fit))
                    fit_records[key] = (name, st, rec)
                return fit_records[key]

            t0 = time.perf_counter()
            unseen = [r[k] for r in world.items(world.holdout) for k in ("question", "paraphrased_question")]
            fit_reused = bool(fit_records)  # the corruption fit runs once (first split); later splits reuse it
            eco = setup_eco(forget_q, retain_q, para_f, para_r, list(world.splits[split]), fit, protocols,
                            unseen=unseen, fpr=s.classifier_fpr, seed=seed, flag_entities=flag_entities)
            from ..eco.guard import EcoGuard, GuardConfig
            for proto in protocols:
                t1 = time.perf_counter()
                guard = EcoGuard(target, tok, eco.rule.classifier,
                                 GuardConfig(eco.corruption[proto], eco.strength[proto], d, seed,
                                             flag_entities=flag_entities, entity_tokens=entity_level),
                                 token_classifier=eco.rule.token_classifier)
                tcl = eco.rule.token_classifier
                corr = Corruption(eco.corruption[proto], eco.strength[proto], np.zeros(0, bool), k=d, seed=seed,
                                  protocol=proto, answer_entities=tcl, prompt_entities=tcl if entity_level else None)
                e = ev(target, data, eco=corr, guard=guard, flagger=guard.classify)
                r = _row(split, "eco", proto, e.summary, compare(e, ev_retain),
                         time.perf_counter() - t1 + (eco.seconds if proto == protocols[0] else 0.0),
                         corruption=eco.corruption[proto], strength=eco.strength[proto], fit=eco.fit[proto])
                r["classifier_fpr"], r["classifier_fnr"] = eco.fpr, eco.fnr
                r["classifier_only_fpr"], r["classifier_only_fnr"] = eco.classifier_fpr, eco.classifier_fnr
                r["classifier_fpr_unseen_authors"] = eco.fpr_unseen
                r["corruption_fit_reused"] = fit_reused  # then `seconds` holds no fit time
                r["classifier_only_fpr_unseen_authors"] = eco.classifier_fpr_unseen
                r["classifier_report"] = eco.rule.classifier.report
                rows.append(r)
            timings[f"eco/{split}"] = time.perf_counter() - t0

        for m in methods:
            if m == "eco":
                continue
            say(f"{split}: {m}", 0, 1)
            t0 = time.perf_counter()
            model, _ = load_lm(models.target)
            unl = get_method(m)()
            rec = unl.unlearn(model, tok, forget, world.items(world.retain_authors()),
                              progress=(lambda i, n, m=m, sp=split: say(f"{sp}: {m}", i, n)) if progress else None)
            e = ev(model, data)
            rows.append(_row(split, m, "-", e.summary, compare(e, ev_retain), time.perf_counter() - t0,
                             unlearn=rec))
            timings[f"{m}/{split}"] = time.perf_counter() - t0
            del model

    # multiple choice: forget subject vs retained subjects, target and ECO with 2-fold cross-fitting: the
    # classifier and the strength of fold f are fitted on the other fold's questions (forget subject and
    # retained subjects alike), so every question is scored once, by a guard that never saw it
    mc_rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    fsub = world.forget_subject

    def mc_logprobs(rows_, corr=None):
        return choice_logprobs(target, tok, [prompt_of(r["question"]) for r in rows_],
                               [[c + "." for c in r["choices"]] for r in rows_], corruption=corr)

    def correct(rows_, corr=None) -> np.ndarray:
        lp = mc_logprobs(rows_, corr)
        return lp.argmax(axis=1) == np.array([r["label"] for r in rows_])

    mc_rows.append({"method": "target", **{k: float(np.mean(correct(v))) for k, v in world.mc.items()}})
    if "eco" in methods:
        from ..eco.classifier import PromptClassifier
        from ..eco.fit import fit_bracket
        folds = {k: (v[0::2], v[1::2]) for k, v in world.mc.items()}
        authors_q = [r["question"] for r in world.items(world.retain_authors())]
        hits: dict[str, list[bool]] = {k: [] for k in world.mc}
        flagged: dict[str, list[bool]] = {k: [] for k in world.mc}
        fold_fits = []
        for f in (0, 1):
            fit_f = {k: v[f] for k, v in folds.items()}
            eval_f = {k: v[1 - f] for k, v in folds.items()}
            retain_q = [r["question"] for k, v in fit_f.items() if k != fsub for r in v] + authors_q
            clf = PromptClassifier.fit([r["question"] for r in fit_f[fsub]], retain_q, fpr=s.classifier_fpr,
                                       seed=seed)

            def mc_metric(strength: float, fit_set) -> float:
                # mean probability of the right choice, normalized over the choices: smooth, 0.25 = chance
                c = Corruption(MC_CORRUPTION, float(strength), np.ones(len(fit_set), bool), k=d, seed=seed)
                lp = mc_logprobs(fit_set, c)
                p = np.exp(lp - lp.max(axis=1, keepdims=True))
                p /= p.sum(axis=1, keepdims=True)
                return float(np.mean(p[np.arange(len(fit_set)), [r["label"] for r in fit_set]]))

            res = fit_bracket(mc_metric, fit_f[fsub], 0.25, lo=0.0, hi=0.5, tol=0.02, max_evals=s.fit_max_evals,
                              hi_max=STRENGTH_MAX)
            fold_fits.append({"strength": res.strength, "n_evals": res.n_evals, "metric": res.metric,
                              "converged": res.converged})
            for k, v in eval_f.items():
                flags = clf.flag([r["question"] for r in v])
                flagged[k] += flags.tolist()
                hits[k] += correct(v, Corruption(MC_CORRUPTION, res.strength, flags, k=d, seed=seed)).tolist()
        mc_rows.append({"method": "eco", **{k: float(np.mean(v)) for k, v in hits.items()},
                        "flagged": {k: float(np.mean(v)) for k, v in flagged.items()}, "folds": fold_fits})
    timings["multiple_choice"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_all

    config = {"scale": scale, "answers": answers, "methods": list(methods), "world": s.world, "lm": s.lm,
              "train": s.train, "splits": list(s.splits), "eco_candidates": list(ECO_CANDIDATES),
              "eco_fit": {k: v[2] for k, v in fit_records.items()}, "flag_entities": flag_entities,
              "mc_chance": 0.25, "forget_subject": fsub, "fit_target_holdout_prob": fit_target,
              "entity_level": entity_level}
    files = {"json": out / "results.json", "md": out / "results.md", "png": out / "tradeoff.png"}
    atomic_write_json(files["json"], {**run_record(config, seed=seed), "rows": rows, "mc_rows": mc_rows,
                                      "timings": timings, "training": models.records})
    atomic_write_text(files["md"], results_markdown(rows, mc_rows, timings, config))
    plot_tradeoff(rows, files["png"])
    return BenchResult(rows, mc_rows, timings, files, config)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != v:
            return "-"
        return f"{v:.2e}" if (abs(v) < 1e-2 and v != 0) else f"{v:.3f}"
    return str(v)


def results_markdown(rows: list[dict], mc_rows: list[dict], timings: dict[str, float], config: dict) -> str:
    """One table per split (target, retain, ECO under both protocols, baselines) and the multiple-choice table."""
    cols = ["method", "protocol", "forget_quality", "model_utility", "forget_rouge", "forget_truth_ratio",
            "mia_auc", "privleak", "classifier_fpr", "classifier_fnr", "seconds"]
    lines = [f"# Unlearning benchmark ({config['scale']} scale, {config['answers']} answers)", "",
             "Forget quality: KS-test p-value of truth ratios vs the retain model (higher = closer to never having "
             "seen the data). Model utility: harmonic mean of 9 TOFU numbers. MIA AUC: Min-K% (forget vs "
             "holdout); PrivLeak in percent vs the retain model (MUSE). ECO protocols: *deployment* corrupts "
             "only the prompt (as served); *paper* also corrupts the forget-entity tokens inside the scored "
             "answer (official ECO evaluation). Generation ROUGE is always what the guarded model writes.", "",
             f"ECO flag rule: {'classifier OR forget-name match' if config.get('flag_entities') else 'classifier'}"
             f"; corrupted tokens: {'forget-entity tokens' if config.get('entity_level') else 'whole prompt'}. "
             "Corruption chosen by the holdout surrogate (smallest KS statistic between the fit set's "
             "corrupted truth ratios and never-seen holdout authors'):", ""]
    for proto, rec in (config.get("eco_fit") or {}).items():
        cands = ", ".join(f"{n} (strength {c['strength']:.3g}, KS {c['ks_statistic']:.3f})"
                          for n, c in rec["candidates"].items())
        lines.append(f"- {proto}: **{rec['corruption']}**; candidates: {cands}")
    lines.append("")
    for split in dict.fromkeys(r["split"] for r in rows):
        lines += [f"## {split}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in rows:
            if r["split"] == split:
                lines.append("| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
        lines.append("")
    if mc_rows:
        subj = [k for k in mc_rows[0] if k != "method"]
        lines += ["## Multiple choice (accuracy; chance 0.25; forget subject: "
                  f"{config['forget_subject']}; ECO 2-fold cross-fitted: each question scored once, by a "
                  "classifier and strength fitted on the other half)", "",
                  "| method | " + " | ".join(subj) + " |", "|" + "---|" * (len(subj) + 1)]
        for r in mc_rows:
            lines.append(f"| {r['method']} | " + " | ".join(_fmt(r.get(k)) for k in subj) + " |")
        lines.append("")
    lines += ["## Timings (seconds)", "", "| part | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in timings.items()]
    return "\n".join(lines) + "\n"


def plot_tradeoff(rows: list[dict], path: Path) -> None:
    """Forget quality (log x) against model utility, one marker per method, one colour per split (TOFU Fig.)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..runs import atomic_path

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    markers = {"target": "o", "retain": "*", "eco": "D", "ga": "v", "gd": "^", "npo": "s"}
    splits = list(dict.fromkeys(r["split"] for r in rows))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for r in rows:
        fq = max(r["forget_quality"], 1e-30)
        label = r["method"] + ("" if r["protocol"] == "-" else f" ({r['protocol']})") + f" {r['split']}"
        ax.scatter(fq, r["model_utility"], marker=markers.get(r["method"], "x"),
                   color=colors[splits.index(r["split"]) % len(colors)],
                   facecolors="none" if r["protocol"] == "paper" else None, s=60, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("forget quality (KS-test p-value vs retain model, log scale)")
    ax.set_ylabel("model utility (harmonic mean)")
    ax.set_title("Unlearning trade-off (up and right is better)")
    ax.legend(fontsize=6, ncol=2, loc="best")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)

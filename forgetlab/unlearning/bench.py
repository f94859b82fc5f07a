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

ECO_CORRUPTION = "rand_noise_first_n"  # Gaussian noise on the first k dims; k = hidden size (all dims)
ROW_FIELDS = ("split", "method", "protocol", "forget_quality", "model_utility", "forget_rouge",
              "forget_truth_ratio", "mia_auc", "privleak", "classifier_fpr", "classifier_fnr", "seconds")


@dataclass
class EcoSetup:
    """A fitted ECO for one forget target: classifier, token classifier, strengths per protocol, fit records."""

    classifier: Any
    token_classifier: Any
    strength: dict[str, float]
    fit: dict[str, dict[str, Any]]
    fpr: float
    fnr: float
    seconds: float


def _fit_splits(world: World, s: Scale) -> tuple[list[dict], list[dict], list[dict], list[dict]]:
    """(retain_eval, fit_items, holdout_fit, holdout_eval): disjoint author groups for utility, ECO's strength
    fit (trained authors outside every forget split), the fit's target (holdout authors) and MIA."""
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


def setup_eco(model, tok, forget_prompts: list[str], retain_prompts: list[str], forget_para: list[str],
              retain_para: list[str], fit_metric_factory: Callable[[str], Callable[[float, Any], float]],
              fit_set: list, target: float, entities: list[str], protocols: tuple[str, ...], *, fpr: float = 0.01,
              seed: int = 0, tol: float = 0.02, max_evals: int = 24) -> EcoSetup:
    """Train the prompt classifier (forget vs retain prompts), measure FPR/FNR on held-out paraphrases, build
    the token classifier for entity tokens and fit the strength of each protocol with the bracketing root
    finder of :mod:`forgetlab.eco.fit` on ``fit_set`` (never the evaluation split)."""
    import numpy as np

    from ..eco.classifier import PromptClassifier, TokenClassifier
    from ..eco.fit import fit_bracket

    t0 = time.perf_counter()
    clf = PromptClassifier.fit(forget_prompts, retain_prompts, fpr=fpr, seed=seed)
    fnr = float(1 - np.mean(clf.flag(forget_para))) if forget_para else float("nan")
    fpr_m = float(np.mean(clf.flag(retain_para))) if retain_para else float("nan")
    tcl = TokenClassifier.fit(entities, retain=retain_prompts, fallback="all")
    strength, fits = {}, {}
    for proto in protocols:
        res = fit_bracket(fit_metric_factory(proto), fit_set, target, lo=0.0, hi=0.5, tol=tol,
                          max_evals=max_evals)
        strength[proto] = res.strength
        fits[proto] = {"strength": res.strength, "metric": res.metric, "target": target, "n_evals": res.n_evals,
                       "converged": res.converged, "fit_set_sha256": res.fit_set_sha256,
                       "fit_set_size": res.fit_set_size}
    return EcoSetup(clf, tcl, strength, fits, fpr_m, fnr, time.perf_counter() - t0)


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
              splits: tuple[str, ...] | None = None, entity_level: bool = False) -> BenchResult:
    """Run the whole benchmark and write ``results.json``, ``results.md`` and ``tradeoff.png`` into ``out_dir``.

    ``splits`` restricts the scale's forget splits (and the retain models trained) to a subset.
    ``entity_level``: ECO corrupts only the forget-entity tokens of flagged prompts (token classifier) instead
    of every prompt token, in the fit, the scoring and the guard's generation alike.
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

    # the surrogate target of ECO's fit: mean normalized answer probability of never-seen (holdout) authors
    hp = score_answers(target, tok, [prompt_of(r["question"]) for r in holdout_fit],
                       [r["answer"] for r in holdout_fit])
    from .metrics import normalized_prob
    fit_target = float(np.mean(normalized_prob(hp.token_logprobs)))

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

            def metric_factory(proto: str, fit_items=fit_items):
                prompts = [prompt_of(r["question"]) for r in fit_items]
                answers = [r["answer"] for r in fit_items]
                ents = sorted({r["entity"] for r in fit_items})

                def metric(strength: float, _fit_set) -> float:
                    from ..eco.classifier import TokenClassifier
                    tc = TokenClassifier.fit(ents)
                    c = Corruption(ECO_CORRUPTION, float(strength), np.ones(len(prompts), bool), k=d, seed=seed,
                                   protocol=proto, answer_entities=tc,
                                   prompt_entities=tc if entity_level else None)
                    sc = score_answers(target, tok, prompts, answers, corruption=c)
                    return float(np.mean(normalized_prob(sc.token_logprobs)))
                return metric

            t0 = time.perf_counter()
            eco = setup_eco(target, tok, forget_q, retain_q, para_f, para_r, metric_factory,
                            [r["question"] for r in fit_items], fit_target, list(world.splits[split]), protocols,
                            fpr=s.classifier_fpr, seed=seed, max_evals=s.fit_max_evals)
            from ..eco.guard import EcoGuard, GuardConfig
            for proto in protocols:
                t1 = time.perf_counter()
                guard = EcoGuard(target, tok, eco.classifier,
                                 GuardConfig(ECO_CORRUPTION, eco.strength[proto], d, seed),
                                 token_classifier=eco.token_classifier if entity_level else None)
                corr = Corruption(ECO_CORRUPTION, eco.strength[proto], np.zeros(0, bool), k=d, seed=seed,
                                  protocol=proto, answer_entities=eco.token_classifier,
                                  prompt_entities=eco.token_classifier if entity_level else None)
                e = ev(target, data, eco=corr, guard=guard, flagger=eco.classifier.flag)
                r = _row(split, "eco", proto, e.summary, compare(e, ev_retain),
                         time.perf_counter() - t1 + (eco.seconds if proto == protocols[0] else 0.0),
                         strength=eco.strength[proto], fit=eco.fit[proto])
                r["classifier_fpr"], r["classifier_fnr"] = eco.fpr, eco.fnr
                r["classifier_report"] = eco.classifier.report
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

    # multiple choice: forget subject vs retained subjects, target and ECO (fit on half the forget subject)
    mc_rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    fsub = world.forget_subject
    f_rows = world.mc[fsub]
    half = len(f_rows) // 2
    mc_fit, mc_eval = f_rows[:half], f_rows[half:]
    subjects = {fsub: mc_eval, **{k: v for k, v in world.mc.items() if k != fsub}}

    def mc_acc(rows_, corr=None) -> float:
        from .metrics import mc_accuracy
        lp = choice_logprobs(target, tok, [prompt_of(r["question"]) for r in rows_],
                             [[c + "." for c in r["choices"]] for r in rows_], corruption=corr)
        return mc_accuracy(lp, [r["label"] for r in rows_])

    mc_rows.append({"method": "target", **{k: mc_acc(v) for k, v in subjects.items()}})
    if "eco" in methods:
        from ..eco.classifier import PromptClassifier
        from ..eco.fit import fit_bracket
        retain_q = [r["question"] for k, v in world.mc.items() if k != fsub for r in v]
        retain_q += [r["question"] for r in world.items(world.retain_authors())]
        clf = PromptClassifier.fit([r["question"] for r in mc_fit], retain_q, fpr=s.classifier_fpr, seed=seed)

        def mc_metric(strength: float, fit_set) -> float:
            c = Corruption(ECO_CORRUPTION, float(strength), np.ones(len(fit_set), bool), k=d, seed=seed)
            return mc_acc(fit_set, c)

        res = fit_bracket(mc_metric, mc_fit, 0.25, lo=0.0, hi=0.5, tol=0.05, max_evals=s.fit_max_evals)
        accs = {}
        for k, v in subjects.items():
            flags = clf.flag([r["question"] for r in v])
            accs[k] = mc_acc(v, Corruption(ECO_CORRUPTION, res.strength, flags, k=d, seed=seed))
        mc_rows.append({"method": "eco", **accs, "strength": res.strength, "n_evals": res.n_evals,
                        "classifier_fnr_forget_eval": float(1 - np.mean(clf.flag([r["question"]
                                                                                  for r in mc_eval])))})
    timings["multiple_choice"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_all

    config = {"scale": scale, "answers": answers, "methods": list(methods), "world": s.world, "lm": s.lm,
              "train": s.train, "splits": list(s.splits), "eco_corruption": ECO_CORRUPTION,
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
             "answer (official ECO evaluation). Generation ROUGE is always what the guarded model writes.", ""]
    for split in dict.fromkeys(r["split"] for r in rows):
        lines += [f"## {split}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in rows:
            if r["split"] == split:
                lines.append("| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
        lines.append("")
    if mc_rows:
        subj = [k for k in mc_rows[0] if k != "method"]
        lines += ["## Multiple choice (accuracy; chance 0.25; forget subject: "
                  f"{config['forget_subject']}, evaluated on the half not used to fit)", "",
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

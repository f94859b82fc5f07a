"""``forgetlab eco fit|classify|generate|targets|serve``: fit a guard (or add a target to one), classify prompts,
list or remove targets, generate or serve under a guard.

Thin: parse, validate, call the library, print. Heavy imports (torch, transformers, MiniLM) stay inside the
commands so ``forgetlab --help`` is fast. Every bad input raises :class:`~forgetlab.errors.BadInput` /
:class:`~forgetlab.errors.ForgetlabError`, which ``forgetlab.cli.main`` prints as one line (exit code 2; 1 for a fault of the environment).
The unlearning judge's commands (``world``, ``evaluate``, ``bench``) are mounted on this app by
``forgetlab.cli``: the method never imports its judge.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import typer

from ..errors import BadInput, ForgetlabError, check_choice, check_range
from ..options import config_command
from ..output import emit, status, warn
from ..progress import Bar, quiet_transformers
from ..runs import iter_jsonl, write_folder_atomically
from .classify.config import ClassifierConfig
from .corruptions import ALIASES, CORRUPTIONS, get_corruption
from .fit import MC_METRICS
from .mc_formats import MC_FORMATS
from .placement import Placement
from .serve.cli import serve_command

app = typer.Typer(no_args_is_help=True, help="ECO: guard a causal LM with embedding-corrupted prompts.")


def _read_mc_jsonl(path: Path) -> list:
    """Multiple-choice items in the project's schema (:class:`~forgetlab.eco.mc.MCItem`: ``question`` or
    ``prompt``, ``choices``, ``answer`` as index, letter or text), one per line; errors name the line. An item
    without a ``subject`` takes the file's name (``wmdp-bio.jsonl``: ``wmdp-bio``) for the letter prompt."""
    from .mc import MCItem

    items = [MCItem.from_dict(obj, where=f"{path}: line {lineno}", subject=path.name.split(".")[0])
             for lineno, obj in iter_jsonl(path, "fit")]
    if not items:
        raise ForgetlabError(f"{path}: empty file (expected one multiple-choice item per line: "
                             '{"prompt": ..., "choices": [...], "answer": index})')
    return items


def _parse_target(target: str, items: list) -> float:
    """``chance`` -> mean ``1 / n_choices`` of the fit items; otherwise a number."""
    if target == "chance":
        return sum(1.0 / len(it.choices) for it in items) / len(items)
    try:
        value = float(target)
    except ValueError:
        raise BadInput("target", target, "'chance' or a number (the metric value to reach)") from None
    if not math.isfinite(value):
        raise BadInput("target", target, "'chance' or a finite number")
    if not 0 <= value <= 1:
        raise BadInput("target", target, "'chance' or a number in [0, 1] (every fit metric is a fraction)")
    return value


def _check_classifier_settings(fpr: float, seed: int, precision: str) -> None:
    """The prompt classifier's settings, checked before any work; errors name the ``eco fit`` option."""
    try:
        ClassifierConfig(fpr=fpr, seed=seed, precision=precision).validate()
    except BadInput as exc:
        option = "classifier_precision" if exc.field == "precision" else exc.field
        raise BadInput(option, exc.value, exc.allowed) from None


FIT_OPTIONS = {
    "model": typer.Option("", "--model", help="The base model: a local Hugging Face causal-LM folder, or a "
        "hub id (org/name) in the local Hugging Face cache (with --add-to: the guard's)."),
    "revision": typer.Option("", "--revision", help="Branch, tag or commit of a hub --model (default main); "
        "the guard records the commit."),
    "forget": typer.Option(..., "--forget", help="JSONL of prompts about the forget target ({'prompt': ...})."),
    "retain": typer.Option(..., "--retain", help="JSONL of prompts that must not be flagged."),
    "fit": typer.Option(None, "--fit", help="JSONL of multiple-choice forget questions to fit the "
        "strength on ({'question', 'choices', 'answer'}: index, letter or text, as "
        "WMDP/MMLU); never the evaluation split (default: none, --strength is used as "
        "given)."),
    "corruption": typer.Option("rand_noise_first_n", "--corruption",
        help="Corruption, one of: " + ", ".join(CORRUPTIONS.names()) + " (the "
        "reference's names " + ", ".join(ALIASES) + " also)."),
    "target": typer.Option("chance", "--target", help="Metric value to reach on --fit: 'chance' (the mean of "
        "1 / number of choices) or a number."),
    "metric": typer.Option("mc_accuracy", "--metric", help="Metric to fit on, one of: "
        + ", ".join(MC_METRICS.names()) + "."),
    "fit_format": typer.Option("raw", "--fit-format", help="How each --fit item is put to the model, one of: "
        + "; ".join(f"{k}: {v}" for k, v in MC_FORMATS.items()) + ". Fit in the format the forgetting will be "
        "measured in (letter for lm-evaluation-harness's wmdp and mmlu tasks). The letter prompt names the "
        "items' subject field, else the file's name (wmdp-bio.jsonl: biology)."),
    "method": typer.Option("bracket", "--method", help="Fitting method, one of: bracket (root finder), zo "
        "(zeroth-order)."),
    "tol": typer.Option(0.05, "--tol", help="Tolerance on the metric."),
    "strength": typer.Option(0.0, "--strength", help="Strength when not fitting (no --fit)."),
    "k": typer.Option(None, "--k", help="Dims to corrupt (default: the hidden size)."),
    "fpr": typer.Option(ClassifierConfig.fpr, "--fpr",
        help="Classifier false-positive rate on retain prompts, in (0, 1)."),
    "entity_level": typer.Option(False, "--entity-level", help="Corrupt only forget entity tokens "
        "(mined from the prompts). Off by default: the paper's ECO corrupts the "
        "whole prompt (`eco bench` turns it on, where it measures better)."),
    "flag_entities": typer.Option(False, "--flag-entities", help="Also flag every prompt that names a forget "
        "entity (mined from the prompts): the flag rule becomes classifier OR "
        "name match. Off by default: the paper's rule is the classifier alone, "
        "and names mined from arbitrary prompts can add false positives (`eco "
        "bench` turns it on: docs/benchmarks/unlearning.md)."),
    "calibration": typer.Option(None, "--calibration", help="JSONL of benign prompts used only to "
        "calibrate the classifier's threshold (and, for a share of them, to "
        "measure its FPR), never to train it: e.g. questions about people "
        "of the same kind as the forget entities (default: none)."),
    "hard_negatives": typer.Option(None, "--hard-negatives", help="JSONL of near-topic benign prompts "
        "(everyday questions on the forget topic) to train, calibrate and "
        "measure the classifier on (default: none)."),
    "unseen_negatives": typer.Option(True, "--unseen-negatives/--no-unseen-negatives", help="Add the forget "
        "prompts rewritten about people who are not forget entities (names "
        "mined from the prompts, swapped) as negatives, so the FPR holds for "
        "never-seen entities; only where names are mined."),
    "classifier_precision": typer.Option(ClassifierConfig.precision, "--classifier-precision",
        help="The prompt classifier's encoder precision when it scores, one of: auto (bf16 where the CPU has AMX "
        "or AVX-512 BF16 units or on a bf16 GPU, else fp32), fp32, bf16. Trained in fp32; the threshold is "
        "calibrated in this precision and the guard records it."),
    "copy_model": typer.Option(False, "--copy-model", help="Copy the base model into the guard folder."),
    "seed": typer.Option(ClassifierConfig.seed, "--seed",
        help="Seed of the classifier's splits and of the corruption's noise."),
    "out": typer.Option(None, "--out", help="Guard folder to write (new or empty): a new guard with "
        "one target (default: none; give --out or --add-to)."),
    "add_to": typer.Option(None, "--add-to", help="Add this forget request as a new target of an "
        "existing guard folder instead (the other targets are not refitted; "
        "default: none)."),
    "name": typer.Option("default", "--name", help="Name of the target (a guard's targets are listed and "
        "removed by name: forgetlab eco targets)."),
    "overwrite": typer.Option(False, "--overwrite", help="Replace an earlier guard folder at --out."),
    "quiet": typer.Option(False, "--quiet", help="No progress bars or status lines on stderr."),
}
"""The options of ``eco fit``, each with its help, apart from the command so that its body reads whole."""


@app.command("fit")
@config_command(Placement, param="placement")
def fit_cmd(
    placement: Placement,
    model: str = FIT_OPTIONS['model'],
    revision: str = FIT_OPTIONS['revision'],
    forget: Path = FIT_OPTIONS['forget'],
    retain: Path = FIT_OPTIONS['retain'],
    fit: Path | None = FIT_OPTIONS['fit'],
    corruption: str = FIT_OPTIONS['corruption'],
    target: str = FIT_OPTIONS['target'],
    metric: str = FIT_OPTIONS['metric'],
    fit_format: str = FIT_OPTIONS['fit_format'],
    method: str = FIT_OPTIONS['method'],
    tol: float = FIT_OPTIONS['tol'],
    strength: float = FIT_OPTIONS['strength'],
    k: int | None = FIT_OPTIONS['k'],
    fpr: float = FIT_OPTIONS['fpr'],
    entity_level: bool = FIT_OPTIONS['entity_level'],
    flag_entities: bool = FIT_OPTIONS['flag_entities'],
    calibration: Path | None = FIT_OPTIONS['calibration'],
    hard_negatives: Path | None = FIT_OPTIONS['hard_negatives'],
    unseen_negatives: bool = FIT_OPTIONS['unseen_negatives'],
    classifier_precision: str = FIT_OPTIONS['classifier_precision'],
    copy_model: bool = FIT_OPTIONS['copy_model'],
    seed: int = FIT_OPTIONS['seed'],
    out: Path | None = FIT_OPTIONS['out'],
    add_to: Path | None = FIT_OPTIONS['add_to'],
    name: str = FIT_OPTIONS['name'],
    overwrite: bool = FIT_OPTIONS['overwrite'],
    quiet: bool = FIT_OPTIONS['quiet'],
) -> None:
    """Train the prompt classifier, fit the corruption strength, and save a guard folder (or add a target).

    Prints one JSON object on stdout: the guard folder, the target, the base model, the classifier's threshold
    and report, the corruption and its fitted strength. The guard folder appears whole or not at all; a second
    command writing the same folder is refused while this one runs."""
    from contextlib import nullcontext

    from ..folders import claim_out_dir
    from .classify.prompts import load_prompts

    spec = _check_fit_options(corruption, strength, k, fit, fpr, metric, method, tol, fit_format)
    _check_classifier_settings(fpr, seed, classifier_precision)
    if quiet:  # before --add-to loads the guard's encoder
        quiet_transformers()
    existing = _check_destination(out, add_to, name, model)
    forget_prompts, retain_prompts = load_prompts(forget, option="forget"), load_prompts(retain, option="retain")
    sets = _flag_sets(forget, forget_prompts, retain_prompts, calibration, hard_negatives, unseen_negatives, seed,
                      fpr)
    say = status(not quiet)
    items, goal = _fit_items(fit, target, fit_format, say)
    claim = claim_out_dir(out, overwrite=overwrite, swapped=True) if out is not None else nullcontext()
    with claim:  # before any work: a second writer is refused at once (--add-to: the folder's own edit lock)
        source, lm, tok = _load_fit_model(model, revision, existing, placement, say)
        guard = _build_guard(lm, tok, source, forget_prompts, retain_prompts, items, spec, corruption, strength, k,
                             goal, (metric, fit_format), method, tol, fpr, seed, entity_level, flag_entities, fit,
                             name, quiet, say, sets, classifier_precision)
        _publish(guard, out, add_to, copy_model, overwrite)
    say(f"wrote {out or add_to}")
    emit(_fit_result(guard, source, out or add_to, name, corruption))


def _fit_items(fit: Path | None, target: str, fit_format: str, say) -> tuple[list | None, float | None]:
    """The --fit items and the metric value to reach on them (both None without --fit); with the letter format,
    say which subject its prompts name (often taken from the file's name)."""
    if fit is None:
        return None, None
    items = _read_mc_jsonl(fit)
    if fit_format == "letter":
        from .mc_formats import subject_name

        say("letter prompts 'about " + "', '".join(sorted({subject_name(it.subject) for it in items})) + "' (each "
            "item's subject field, else the file's name)")
    return items, _parse_target(target, items)


def _fit_result(guard, source, folder: Path, name: str, corruption: str) -> dict:
    """What ``eco fit`` prints: the guard folder, target, base model, classifier and fit summary."""
    fit_record, c, clf = guard.fit, guard.config, guard.classifier
    summary = None if fit_record is None else {x: fit_record[x] for x in ("method", "metric", "target", "n_evals",
                                                                          "converged", "fit_set_sha256")}
    report = getattr(clf, "report", {}) or {}
    return {"guard": str(folder), "target": name, "model": source.hub_id or str(source.folder),
            "revision": source.revision, "device": str(guard.device), "dtype": str(guard.dtype).replace("torch.", ""),
            "threshold": getattr(clf, "threshold", None),
            "classifier_precision": getattr(getattr(clf, "config", None), "precision", None), "classifier_report": report, "corruption": corruption,
            "strength": float(c.strength), "k": int(c.k), "fit": summary, "flag_rule": report.get("flag_rule")}


def _build_guard(lm, tok, source, forget_prompts, retain_prompts, items, spec, corruption, strength, k, goal,
                 metric, method, tol, fpr, seed, entity_level, flag_entities, fit, name, quiet, say, sets,
                 precision):
    """Train the classifiers and fit the strength (or k) on the loaded base model: the guard, with its fit
    record. ``metric``: the fit metric's name and the items' format (:data:`~forgetlab.eco.mc_formats.MC_FORMATS`)."""
    from .classify.prompt import PromptClassifier
    from .classify.token import TokenClassifier
    from .corrupter import Corrupter
    from .guard import EcoGuard, GuardConfig
    from .hooks import hidden_size

    d = hidden_size(lm)
    k = d if k is None else k
    if k < 0 or k > d:
        raise BadInput("k", k, f"an integer in [0, {d}] (the hidden size)")
    say(f"training the prompt classifier on {len(forget_prompts)} forget / {len(retain_prompts)} retain prompts")
    clf = PromptClassifier.fit(forget_prompts, retain_prompts, negatives=sets["negatives"],
                               calibration_sets=sets["calibration"], fpr=fpr, seed=seed, precision=precision,
                               progress=not quiet)
    tclf = (TokenClassifier.fit(forget=forget_prompts, retain=retain_prompts, references=sets["references"])
            if entity_level or flag_entities else None)
    _check_flag_rule(clf, tclf, flag_entities, fpr, say)
    config = GuardConfig(corruption, float(strength), int(k), seed, flag_entities=flag_entities,
                         entity_tokens=entity_level)
    fit_record = None
    if items is not None and (spec.uses_strength or spec.uses_k):  # fitted exactly as the guard will corrupt
        fit_record = _fit(lm, Corrupter(tok, config, tclf), items, spec, d, goal, metric, method, tol, quiet)
        fit_record["fit_file"] = str(fit)
        strength, k = _report_fit(fit_record, spec, strength, k, metric[0], goal, tol, say)
        config = replace(config, strength=float(strength), k=int(k))
        _check_changes_something(fit_record, clf, tol)
    return EcoGuard(lm, tok, clf, config, token_classifier=tclf, model_source=source, fit=fit_record, name=name)


def _flag_sets(forget_path: Path, forget: list[str], retain: list[str], calibration: Path | None,
               hard_negatives: Path | None, unseen: bool, seed: int, fpr: float) -> dict:
    """The flag rule's extra sets: ``negatives`` (hard negatives, unseen-entity rewrites), ``calibration``
    (calibration-only prompts) and ``references`` (titles and rare terms of the forget texts, answers included,
    for the name matcher)."""
    from .classify.entities import mine_entities
    from .classify.entity_sets import entity_sets
    from .classify.prompts import load_prompts, load_texts

    negatives, calib = {}, {}
    if hard_negatives is not None:
        negatives["hard_negative"] = load_prompts(hard_negatives, option="hard_negatives")
    if calibration is not None:
        calib["calibration"] = load_prompts(calibration, option="calibration")
    entities = mine_entities(forget, retain)
    answers = load_texts(forget_path, ("answer", "paraphrased_answer"))
    extra = entity_sets(forget, retain, entities, forget_texts=answers, seed=seed, fpr=fpr, unseen=unseen)
    return {"negatives": {**negatives, **extra.negatives}, "calibration": calib, "references": extra.references}


def _check_flag_rule(clf, tclf, flag_entities: bool, fpr: float, say) -> None:
    """Measure the whole flag rule on the fit's held-out prompts, record it in the classifier's report (saved in
    the guard folder) and warn on stderr when it is weak."""
    from .classify.rule import MAX_MISS, FlagRule, rule_report

    rep = rule_report(FlagRule(clf, tclf, flag_entities), getattr(clf, "heldout", {}), fpr)
    clf.report["flag_rule"] = rep
    parts = [f"{n} {r['rule']:.1%}" for n, r in rep["sets"].items()]
    miss = rep.get("miss_rate", {}).get("rule")
    say("flag rule on held-out prompts: " + (f"miss {miss:.1%}; " if miss is not None else "")
        + "FPR " + ", ".join(parts))
    for line in rep["warnings"]:
        warn(line)
    if not flag_entities and miss is not None and miss > MAX_MISS and "unseen_entity" in rep["sets"]:
        warn("the forget prompts name entities (names were mined from them): --flag-entities also flags every "
             "prompt that names one (a classifier that must pass prompts about never-seen people at this FPR "
             "often cannot flag the forget people's either: docs/benchmarks/guard_evasion.md)")


def _check_changes_something(rec: dict, clf, tol: float) -> None:
    """Warn (and record) when the fitted corruption leaves the fit metric where strength 0 has it."""
    base = [m for s, m in rec.get("history", []) if s == 0]
    if rec["strength"] == 0 or (base and abs(rec["metric"] - base[0]) < tol / 2):
        line = (f"the fitted corruption changes nothing: strength {rec['strength']:.4g} leaves the fit metric at "
                f"{rec['metric']:.3f}" + (f" (uncorrupted {base[0]:.3f})" if base else ""))
        warn(line + "; a model that knows the items in another form is measured in that form with --fit-format")
        clf.report.setdefault("flag_rule", {"warnings": []})["warnings"].append(line)


def _check_destination(out: Path | None, add_to: Path | None, name: str, model: str):
    """Exactly one of ``--out`` / ``--add-to``; for ``--add-to``, the guard's record (a new target name, the same
    base model)."""
    from ..folders import refuse_current_folder
    from .guard_folder import GUARD_FOLDER, read_guard_folder, read_guard_meta, target_names
    from .targets import check_name

    check_name(name, "name")
    if (out is None) == (add_to is None):
        raise BadInput("out", None if out is None else str(out), "either --out (a new guard) or --add-to GUARD")
    if add_to is None:
        if not model:
            raise BadInput("model", "", "a model folder or hub id (required with --out)")
        return None
    if not (add_to / "guard.json").is_file():
        raise BadInput("add_to", str(add_to), GUARD_FOLDER)
    refuse_current_folder(add_to, "add_to")  # the edited guard is swapped in whole
    names = target_names(read_guard_meta(add_to), add_to)
    if name in names:
        raise BadInput("name", name, "a name no target of the guard has yet (" + ", ".join(names) + ")")
    return read_guard_folder(add_to)


def _load_fit_model(model: str, revision: str, existing, placement: Placement, say):
    """(source, model, tokenizer): the ``--model`` given, or the base model of the guard a target is added to."""
    from .base_model import load_base_model, resolve_model

    source = existing.model_source if existing is not None and not model else resolve_model(model, revision or None)
    if existing is not None and source.folder.resolve() != existing.model_source.folder.resolve():
        raise BadInput("model", model, f"the base model of the guard ({existing.model_source.folder}), or no --model")
    say(f"loading the base model from {source.hub_id or source.folder}")
    lm, tok = load_base_model(source.folder, placement=placement)
    return source, lm, tok


def _publish(guard, out: Path | None, add_to: Path | None, copy_model: bool, overwrite: bool) -> None:
    """Write the new guard to ``out``, or add its one target to the guard folder ``add_to``."""
    from dataclasses import asdict

    from .guard_folder import add_folder_target

    if add_to is None:
        write_folder_atomically(out, lambda tmp: guard.save_pretrained(tmp, copy_model=copy_model, overwrite=True),
                                replace=lambda old: overwrite or (old / "guard.json").is_file())
        return
    add_folder_target(add_to, name=guard.name, config=asdict(guard.config), classifier=guard.classifier,
                      token_classifier=guard.token_classifier, fit=guard.fit)


def _check_fit_options(corruption: str, strength: float, k: int | None, fit: Path | None, fpr: float, metric: str,
                       method: str, tol: float, fit_format: str):
    """Validate ``eco fit``'s options before any work; returns the corruption's spec."""
    from .fit import FIT_METHODS

    check_range("fpr", fpr, 0.0, 1.0, lo_open=True, hi_open=True)
    spec = get_corruption(corruption)
    if not math.isfinite(strength) or strength < 0:
        raise BadInput("strength", strength, "a finite number >= 0")
    if fit is None and spec.uses_strength and strength == 0:
        raise BadInput("strength", strength, f"> 0 when no --fit file is given ({corruption} at strength 0 "
                       "changes nothing), or pass --fit FIT.jsonl to fit it")
    if k is not None and k < 0:
        raise BadInput("k", k, "an integer >= 0 (at most the hidden size)")
    if k == 0 and spec.uses_k and (fit is None or spec.uses_strength):  # k is used as given
        raise BadInput("k", k, f"an integer >= 1 ({corruption} with k = 0 corrupts no dimension); leave it out "
                       "for the whole hidden size")
    MC_METRICS.check(metric, "metric")
    check_choice("fit_format", fit_format, MC_FORMATS)
    check_choice("method", method, FIT_METHODS)
    if not (tol > 0 and math.isfinite(tol)):
        raise BadInput("tol", tol, "a finite number > 0")
    return spec


def _report_fit(rec: dict, spec, strength: float, k: int, metric: str, goal: float, tol: float,
                say) -> tuple[float, int]:
    """Say what the fit found (warn when it did not converge); return the (strength, k) to use."""
    if spec.uses_strength:
        strength = rec["strength"]
    else:
        k = round(rec["strength"])
    say(f"fitted {'strength' if spec.uses_strength else 'k'} = {rec['strength']:.4g}: "
        f"{metric} {rec['metric']:.3f} (target {goal:.3f}) after {rec['n_evals']} evaluations")
    values = [m for _, m in rec.get("history", [])]
    if not rec["converged"] and values and max(values) - min(values) < 1e-9:
        top = max(s for s, _ in rec["history"])
        warn(f"the fit did not reach {metric} = {goal:.3f} +- {tol}: the metric stayed at {values[0]:.3f} at every "
             f"{rec.get('knob', 'strength')} tried (0 to {top:.4g}), so the model's answers to the items do not "
             "depend on their prompts: check that it answers them in this --fit-format at all")
    elif not rec["converged"]:
        warn(f"the fit did not reach {metric} = {goal:.3f} +- {tol} (best {rec['metric']:.3f} "
             f"at {rec['strength']:.4g}); the metric may not be monotone in it: try --method zo, "
             "another corruption, or a larger --tol")
    return strength, k


def _fit(lm, corrupter, items, spec, d, goal, metric: tuple[str, str], method, tol, quiet) -> dict:
    """Fit the strength (or k) on the fit items with a progress bar; returns the FitResult as a dict.
    ``metric``: the metric's name and the items' format."""
    from dataclasses import asdict

    from .fit import fit_strength
    from .mc import mc_metric

    knob = "strength" if spec.uses_strength else "k"
    which, fmt = metric
    base = mc_metric(lm, corrupter, which=which, knob=knob, fmt=fmt)
    max_evals = 40 if method == "bracket" else 60
    if method == "bracket":
        kw = {"lo": 0.0, "hi": 1.0 if knob == "strength" else float(max(1, d // 8)), "integer": knob == "k"}
    else:
        kw = {"s0": 1.0 if knob == "strength" else max(1.0, d / 8), "hi": math.inf if knob == "strength" else d}
    kw["max_evals"] = max_evals
    with Bar("fitting", max_evals, not quiet, transient=True) as bar:
        def metric_fn(s, fit_set):
            if knob == "k" and round(s) > d:
                s = d
            v = base(s, fit_set)
            bar.advance()
            return v

        res = fit_strength(metric_fn, items, goal, method=method, tol=tol, **kw)
    rec = asdict(res)
    rec.update(knob=knob, metric_name=which, format=fmt, k=corrupter.config.k)
    return rec


@app.command("classify")
def classify_cmd(
    guard: Path = typer.Option(..., "--guard", help="Guard folder written by 'forgetlab eco fit'."),
    prompt: list[str] = typer.Option(..., "--prompt", help="Prompt text (repeat for several)."),
) -> None:
    """Print one JSON object per prompt and line on stdout: whether the guard flags it (its whole flag rule),
    the classifier score, whether the prompt names a forget entity (guards fitted with --flag-entities) and which
    targets flag it."""
    from .guard_folder import load_target_rules
    from .targets import TargetRules

    quiet_transformers()
    rules = load_target_rules(guard)  # the base model is not needed to classify
    rule = rules[0][1] if len(rules) == 1 else TargetRules(rules)
    own, scores, names = rule.parts(prompt)
    flags = own | names
    which = [[rules[0][0] or "default"] if f else [] for f in flags] if len(rules) == 1 else rule.which(prompt)
    for p, f, s, n, w in zip(prompt, flags, scores, names, which, strict=True):
        # a prompt cleared by the cheap first stage scores -inf: JSON has no infinity, so report null
        score = float(s) if math.isfinite(float(s)) else None
        emit({"prompt": p, "flagged": bool(f), "score": score, "name_match": bool(n), "targets": w})


@app.command("targets")
def targets_cmd(
    guard: Path = typer.Option(..., "--guard", help="Guard folder written by 'forgetlab eco fit'."),
    remove: str = typer.Option("", "--remove", help="Drop the target of this name (the folder is rewritten "
                               "atomically; the base model is neither loaded nor copied) (default: none)."),
) -> None:
    """List a guard's forget targets, one JSON object per line on stdout (add one with 'eco fit --add-to');
    --remove drops one first."""
    from .guard_folder import GUARD_FOLDER, folder_target_summaries, remove_folder_target

    if not (guard / "guard.json").is_file():
        raise BadInput("guard", str(guard), GUARD_FOLDER)
    if remove:
        remove_folder_target(guard, remove)
    for row in folder_target_summaries(guard):
        emit(row)


@app.command("generate")
@config_command(Placement, param="placement")
def generate_cmd(
    placement: Placement,
    guard: Path = typer.Option(..., "--guard", help="Guard folder written by 'forgetlab eco fit'."),
    prompt: list[str] = typer.Option(..., "--prompt", help="Prompt text (repeat for several)."),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", help="Most new tokens to generate per prompt."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per prompt and line ({prompt, flagged, "
                                 "text}) instead of text lines."),
    quiet: bool = typer.Option(False, "--quiet", help="No status lines on stderr."),
) -> None:
    """Generate greedily under the guard; prints one line per prompt on stdout: the flag in brackets
    (flagged: yes or flagged: no), the prompt, a tab and the answer; or JSON with --json."""
    if max_new_tokens < 1:
        raise BadInput("max_new_tokens", max_new_tokens, "an integer >= 1")
    from .guard import EcoGuard

    quiet_transformers()
    status(not quiet)(f"loading the guard {guard}")
    g = EcoGuard.from_pretrained(guard, placement=placement)
    for row in g.generate_text(prompt, max_new_tokens=max_new_tokens, do_sample=False):
        if as_json:
            emit(row)
        else:
            flag = "yes" if row["flagged"] else "no"
            prompt_text, answer = (row[k].replace("\t", " ").replace("\n", " ") for k in ("prompt", "text"))
            print(f"[flagged: {flag}] {prompt_text}\t{answer}")  # the only tab: where the answer begins


app.command("serve")(serve_command)

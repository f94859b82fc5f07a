"""The bench's Markdown report, rendered from a ``results.json`` alone (never copied by hand).

``forgetlab eco bench-report RESULTS --out docs/benchmarks/unlearning.md`` writes it; the bench writes the same
text to ``results.md`` beside its ``results.json``. The page says when, where (CPU model, cores, torch threads and
version, load average) and how (the command) the numbers were measured, then one table per forget split with
mean +- sd over the seeds (open-unlearning's metric names), each seed's headline numbers, the corruption fits, the
baselines' tuning, the held-out check and the multiple-choice rows.
"""

from __future__ import annotations

from typing import Any

from ...fmt import fmt
from .summary import SUMMARY_FIELDS

_DEFINITIONS = (
    "Metrics as open-unlearning (OU) and MUSE define them, under OU's names. forget_quality: KS-test p-value "
    "between the per-item truth ratios of the model and of the retain model on the forget split (higher = closer "
    "to never having seen it). model_utility: harmonic mean (scipy) of probability, ROUGE-L recall and truth "
    "ratio on the retain-eval, real-authors and world-facts sets. forget_Q_A_Prob / forget_Q_A_ROUGE / "
    "forget_truth_ratio: length-normalized answer probability, ROUGE-L recall of the greedy answer and "
    "mean(min(R, 1/R)) on the forget split. forget_gen_ppl: fluency of the greedy answers to forget questions, "
    "their perplexity (EOS included) under the split's retain model given the question (it never saw these "
    "authors: lower = more fluent, gibberish scores far above the retain model's own answers). retain_reseed: a "
    "second retain model trained with another seed (the ceiling of forget quality: two never-trained models). privleak: MUSE's ((1 - AUC) - (1 - AUC_retain)) / (1 - AUC_retain) "
    "* 100 on the Min-K% (k = 0.4) AUC (0 = like the retain model, negative = forget set still looks like "
    "members). mia_*: ROC AUC (scikit-learn) of forget (members) vs holdout authors (non-members), 1 = forget "
    "items much more likely. extraction_strength / exact_memorization: OU's, from the greedy predictions under "
    "teacher forcing. Probabilities, truth ratios, LOSS and zlib include the EOS token; Min-K, Min-K++, exact "
    "memorization and extraction strength drop it (OU's conventions). ECO protocols: *deployment* corrupts only "
    "the prompt (as served); *paper* also corrupts the forget-entity tokens inside the scored answer (the "
    "official ECO evaluation). Generation ROUGE is always what the guarded model writes.")


def _ms(cell: dict[str, Any], style: str = "3f") -> str:
    """``mean +- sd`` (the mean alone for one seed)."""
    if cell["n"] > 1:
        return f"{fmt(cell['mean'], style)} +- {fmt(cell['sd'], style)}"
    return fmt(cell["mean"], style)


def _header(res: dict[str, Any]) -> list[str]:
    """Title, how the page was made, and where and when the numbers were measured."""
    c, m = res["config"], res.get("machine", {})
    seeds = ",".join(str(k) for k in c.get("seeds", [0]))
    asked = ",".join(str(k) for k in c.get("seeds_requested", c.get("seeds", [0])))
    cmd = (f"forgetlab eco bench --scale {c['scale']} --answers {c['answers']} --seeds {asked} "
           f"--methods {','.join(c['methods'])}"
           + (f" --splits {','.join(c['splits'])}" if c.get("splits") else "")
           + f"{'' if c.get('tune', False) else ' --no-tune'}"  # no key: a run before tuning existed
           + f"{'' if c.get('reseeded_retain', True) else ' --no-reseeded-retain'} --out DIR")
    if c.get("merged_from"):
        return _merged_header(res, cmd)
    load = m.get("load_average")
    return [f"# Unlearning benchmark ({c['scale']} scale, {c['answers']} answers, seeds {seeds})", "",
            "Generated from `DIR/results.json` by `forgetlab eco bench-report DIR/results.json --out "
            "docs/benchmarks/unlearning.md`; do not edit by hand (rerun the two commands instead).", "",
            f"- command: `{cmd}`" + ("" if asked == seeds else f" (seeds finished: {seeds}; the run ended before "
                                                                 "the others)"),
            f"- measured: {m.get('date_utc', res.get('started', '?'))} (UTC), {fmt(res['timings'].get('total'), '4g')} s",
            f"- machine: {m.get('cpu_model', '?')}, {m.get('cpu_count', '?')} logical cores, torch "
            f"{m.get('torch', res.get('versions', {}).get('torch', '?'))} with {m.get('torch_threads', '?')} "
            f"threads; load average (1/5/15 min) {load} at the start, {m.get('load_average_end')} at the end"
            + (" (a shared machine: timings are under load)" if load and load[0] > (m.get("cpu_count") or 1)
               else ""),
            f"- flag rule: {'classifier OR forget-name match' if c.get('flag_entities') else 'classifier'}; "
            f"corrupted tokens: {'forget-entity tokens' if c.get('entity_level') else 'whole prompt'}", "",
            _DEFINITIONS, ""]


def _merged_header(res: dict[str, Any], cmd: str) -> list[str]:
    """The header of a record joined by ``forgetlab eco bench-merge``: the runs' commands and each run's machine."""
    c, m = res["config"], res["machine"]
    seeds = ",".join(str(k) for k in c["seeds"])
    per_run = cmd.replace(f"--seeds {seeds}", "--seeds K").replace("--out DIR", "--out DIR_K")
    lines = [f"# Unlearning benchmark ({c['scale']} scale, {c['answers']} answers, seeds {seeds})", "",
             "Generated from `DIR/results.json` by `forgetlab eco bench-report DIR/results.json --out "
             "docs/benchmarks/unlearning.md`; do not edit by hand (rerun the commands instead).", "",
             f"- commands: `{per_run}` for each seed K (separate processes), then `forgetlab eco bench-merge "
             + " ".join(f"DIR_{k}/results.json" for k in c["seeds"]) + " --out DIR`",
             f"- machine: {m.get('cpu_model', '?')}, {m.get('cpu_count', '?')} logical cores, torch "
             f"{m.get('torch', '?')}; the runs (load average 1/5/15 min at their start and end):"]
    for r in m["runs"]:
        loads = [x[0] for x in (r.get("load_average"), r.get("load_average_end")) if x]
        busy = bool(loads) and max(loads) > (r.get("cpu_count") or 1)
        lines.append(f"  - seed{'s' if len(r['seeds']) > 1 else ''} {','.join(map(str, r['seeds']))}: started {r.get('date_utc', '?')} (UTC), "
                     f"{fmt(r.get('total_seconds'), '4g')} s, {r.get('torch_threads', '?')} torch thread(s), load "
                     f"{r.get('load_average')} -> {r.get('load_average_end')}"
                     + (" (a shared machine: timings are under load)" if busy else ""))
    return [*lines, f"- flag rule: {'classifier OR forget-name match' if c.get('flag_entities') else 'classifier'}; "
            f"corrupted tokens: {'forget-entity tokens' if c.get('entity_level') else 'whole prompt'}", "",
            _DEFINITIONS, ""]


def _split_tables(res: dict[str, Any]) -> list[str]:
    """Per split: mean +- sd of every metric; with several seeds, each seed's forget quality and utility."""
    lines: list[str] = []
    cols = [f for f in SUMMARY_FIELDS if any(f in s for s in res["summary"])]  # older records lack newer fields
    multi = len(res["config"].get("seeds", [0])) > 1
    for split in dict.fromkeys(r["split"] for r in res["summary"]):
        lines += [f"## {split}" + (" (mean +- sd over seeds)" if multi else ""), "",
                  "| method | protocol | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 2)]
        for s in (s for s in res["summary"] if s["split"] == split):
            lines.append(f"| {s['method']} | {s['protocol']} | " + " | ".join(_ms(s[f]) for f in cols) + " |")
        lines.append("")
        if multi:
            lines += ["Each seed (forget_quality / model_utility / privleak):", "",
                      "| method | protocol | " + " | ".join(f"seed {k}" for k in res["config"]["seeds"]) + " |",
                      "|" + "---|" * (len(res["config"]["seeds"]) + 2)]
            for s in (s for s in res["summary"] if s["split"] == split):
                by = {r["seed"]: r for r in res["rows"] if (r["split"], r["method"], r["protocol"])
                      == (split, s["method"], s["protocol"])}
                cells = [" / ".join(fmt(by[k][f], "3f") for f in ("forget_quality", "model_utility", "privleak"))
                         if k in by else "-" for k in res["config"]["seeds"]]
                lines.append(f"| {s['method']} | {s['protocol']} | " + " | ".join(cells) + " |")
            lines.append("")
    return lines


def _fits(res: dict[str, Any]) -> list[str]:
    """ECO's corruption choice per seed (every candidate with its fitted strength and distances) and the
    held-out check."""
    lines = ["## ECO's corruption (holdout surrogate: each candidate's strength minimizes its distance to "
             "never-seen authors, the larger KS statistic of truth ratios and of answer probabilities; the "
             "smallest distance wins)", ""]
    for seed, part in res["config"].get("per_seed", {}).items():
        for proto, rec in (part.get("eco_fit") or {}).items():
            lines.append(f"- seed {seed}, {proto}: **{rec['corruption']}**. " + "; ".join(
                _candidate(n, c) for n, c in rec["candidates"].items()))
    lines += _tuning(res)
    lines += ["", "## Held-out check (passed before any fit; sizes of the sets compared, first seed)", ""]
    check = next(iter(res["config"].get("heldout_check", {}).values()), {})
    for split, rec in check.items():
        fits = ", ".join(f"{k} {v}" for k, v in rec["fit_sets"].items())
        scored = ", ".join(f"{k} {v}" for k, v in rec["scored_sets"].items())
        lines.append(f"- {split}: fit sets ({fits}) share no {' or '.join(rec['by'])} with scored sets ({scored})")
    return [*lines, ""]


def _candidate(name: str, c: dict[str, Any]) -> str:
    """One candidate of a corruption fit: its strength, KS statistics and evaluations (records written before the
    distribution fit have no ``distance``: their bracketing exclusion is shown instead)."""
    text = f"{name}: strength {c['strength']:.4g}, KS truth ratio {c['ks_statistic']:.3f}"
    if "distance" in c:
        text += f", KS probability {c['ks_prob']:.3f} ({c['n_evals']} evaluation{'s' if c['n_evals'] > 1 else ''})"
    return text + (f" (excluded: {c['excluded']})" if c.get("excluded") else "")


_TRANSFER = ("A forget split runs the chosen point's number of optimizer updates (its epochs scaled by the proxy's "
             "batches per epoch over the split's; each row's `unlearn` record). ")


def _tuning(res: dict[str, Any]) -> list[str]:
    """Each baseline's tuning per seed: every grid point's KS statistic, floor ratio and time, and the choice."""
    parts = {seed: part.get("baseline_tuning") or {} for seed, part in res["config"].get("per_seed", {}).items()}
    if not any(parts.values()):
        if res["config"].get("tune") or not set(res["config"].get("methods", [])) - {"eco"}:
            return []  # no baseline among the methods
        return ["", "Baselines: untuned (`--no-tune`: the defaults of `UnlearnConfig`, recorded in each row's "
                "`unlearn.config`)."]
    first = next(rec for p in parts.values() for rec in p.values())
    lines = ["", "## Baselines' learning rate and epochs (ECO's rule: unlearn the fit set as a proxy forget set; "
             "smallest KS statistic of its truth ratios vs never-seen authors'; floor: mean answer probability on "
             f"held-back retain authors >= {first['floor_fraction']:g} x the target's)", "",
             f"Proxy forget set {first['proxy_forget_set']} items, tuning retain set {first['retain_set']}, floor "
             f"set {first['floor_set']} items of {first['floor_authors']} held-back author(s); no evaluation item, "
             "no retain model. " + (_TRANSFER if res["config"].get("tuned_epochs") == "matching updates" else
                                      "Each split ran the chosen epochs as they are. ") + "A point's seconds: its training epochs and its scoring (points with one learning "
             "rate share a run).",
             "", "| seed | method | lr | epochs | KS | floor ratio | seconds | chosen |", "|---|---|---|---|---|---|---|---|"]
    for seed, tuned in parts.items():
        for method, rec in tuned.items():
            for i, p in enumerate(rec["points"]):
                mark = ("**yes**" + (" (fallback)" if rec["fallback"] else "")) if i == rec["chosen_index"] else ""
                lines.append(f"| {seed} | {method} | {p['lr']:g} | {p['epochs']} | {fmt(p['ks_statistic'], '3f')} | "
                             f"{fmt(p['floor_ratio'], '3f')} | {p['seconds']:.1f} | {mark} |")
    lines.append("")
    lines += [f"- seed {seed}, {method}: lr {rec['chosen']['lr']:g}, {rec['chosen']['epochs']} epochs: {rec['why']}"
              for seed, tuned in parts.items() for method, rec in tuned.items()]
    return lines


def _mc_and_timings(res: dict[str, Any]) -> list[str]:
    """The multiple-choice rows of every seed and the timings."""
    lines: list[str] = []
    mc = res.get("mc_rows") or []
    if mc:
        subj = [k for k in mc[0] if k not in ("method", "seed", "flagged", "folds")]
        lines += [f"## Multiple choice (accuracy; chance {res['config'].get('mc_chance')}; forget subject: "
                  f"{res['config'].get('forget_subject')}; ECO 2-fold cross-fitted)", "",
                  "| method | seed | " + " | ".join(subj) + " |", "|" + "---|" * (len(subj) + 2)]
        for r in mc:
            lines.append(f"| {r['method']} | {r.get('seed', 0)} | " + " | ".join(fmt(r.get(k), "3f") for k in subj)
                         + " |")
        lines.append("")
    lines += ["## Timings (seconds)", "", "| part | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in res["timings"].items()]
    return lines


def render_report(res: dict[str, Any]) -> str:
    """The whole Markdown page from a bench ``results.json`` (as loaded)."""
    return "\n".join(_header(res) + _split_tables(res) + _fits(res) + _mc_and_timings(res)) + "\n"

"""The bench's results: rows, the Markdown tables and the forget-quality vs utility figure."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...fmt import fmt
from ...runs import atomic_path

METRICS = ("forget_quality", "model_utility", "forget_Q_A_Prob", "forget_Q_A_ROUGE", "forget_truth_ratio", "privleak",
           "extraction_strength", "exact_memorization", "mia_loss", "mia_zlib", "mia_min_k", "mia_min_k_plus_plus")
ROW_FIELDS = ("split", "method", "protocol", *METRICS, "classifier_fpr", "classifier_fnr", "seconds")


@dataclass
class BenchResult:
    """Rows (dicts with :data:`ROW_FIELDS` and extras), the multiple-choice rows, timings and written files."""

    rows: list[dict[str, Any]]
    mc_rows: list[dict[str, Any]]
    timings: dict[str, float]
    files: dict[str, Path]
    config: dict[str, Any]


def row(split: str, method: str, protocol: str, summary: dict, cmp: dict, seconds: float, **extra) -> dict:
    """One table row: the method's summary and its comparison with the retain model under open-unlearning's
    metric names (:data:`METRICS`), NaN where not measured."""
    both = {**summary, **cmp}
    r = {"split": split, "method": method, "protocol": protocol,
         **{k: both.get(k, float("nan")) for k in METRICS},
         "classifier_fpr": float("nan"), "classifier_fnr": float("nan"), "seconds": seconds}
    r.update(extra)
    return r


def results_markdown(rows: list[dict], mc_rows: list[dict], timings: dict[str, float], config: dict) -> str:
    """One table per split (target, retain, ECO under both protocols, baselines) and the multiple-choice table."""
    cols = ["method", "protocol", *METRICS, "classifier_fpr", "classifier_fnr", "seconds"]
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
        cands = ", ".join(f"{n} (strength {c['strength']:.3g}, KS {c['ks_statistic']:.3f}"
                          + (", not converged: excluded)" if c.get("excluded") else ")")
                          for n, c in rec["candidates"].items())
        lines.append(f"- {proto}: **{rec['corruption']}**; candidates: {cands}")
    lines.append("")
    for split in dict.fromkeys(r["split"] for r in rows):
        lines += [f"## {split}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in rows:
            if r["split"] == split:
                lines.append("| " + " | ".join(fmt(r.get(c), "3f") for c in cols) + " |")
        lines.append("")
    if mc_rows:
        subj = [k for k in mc_rows[0] if k != "method"]
        lines += ["## Multiple choice (accuracy; chance 0.25; forget subject: "
                  f"{config['forget_subject']}; ECO 2-fold cross-fitted: each question scored once, by a "
                  "classifier and strength fitted on the other half)", "",
                  "| method | " + " | ".join(subj) + " |", "|" + "---|" * (len(subj) + 1)]
        for r in mc_rows:
            lines.append(f"| {r['method']} | " + " | ".join(fmt(r.get(k), "3f") for k in subj) + " |")
        lines.append("")
    lines += ["## Timings (seconds)", "", "| part | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in timings.items()]
    return "\n".join(lines) + "\n"


def plot_tradeoff(rows: list[dict], path: Path) -> None:
    """Forget quality (log x) against model utility, one marker per method, one colour per split (TOFU Fig.)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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

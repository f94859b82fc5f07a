"""The bench's results: rows under open-unlearning's metric names and the forget-quality vs utility figure."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...runs import atomic_path

METRICS = ("forget_quality", "model_utility", "forget_Q_A_Prob", "forget_Q_A_ROUGE", "forget_gen_ppl",
           "forget_truth_ratio", "privleak",
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


def plot_tradeoff(rows: list[dict], path: Path) -> None:
    """Forget quality (log x) against model utility, one marker per method, one colour per split (TOFU Fig.)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    markers = {"target": "o", "retain": "*", "retain_reseed": "X", "eco": "D", "ga": "v", "gd": "^", "npo": "s", "rmu": "P"}
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

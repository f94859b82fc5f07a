"""Every cell of measured sweeps as a Markdown table: where each alpha x xi point ended, with the numbers that
decide its phase (forgetlab.grok.phases), so a reader can check a phase diagram cell by cell.

    .venv/bin/python benchmarks/phase_cells.py docs/benchmarks/phases/wd_p47 ...

``--summary`` prints one row per panel instead: how many cells un-memorized most of their corrupted labels
(inverted share >= 50%, the paper's inversion whatever the accuracy rule calls the cell), how many generalize
(test >= 90%), and the range of final / initial weight norms.

Reads each folder's ``results.csv`` (one row per run) and prints one table row per run, sorted by panel value,
alpha and xi: train accuracy on the corrupted training labels, test accuracy, the share of corrupted training
examples predicted with their corrupted label (memorized) and with their true label (inverted), the clean level
1 - xi that Full Inversion sits near, and the final / initial weight norm (the Forgetting rule). Accuracies in
percent. Folders missing ``results.csv`` are a one-line error with exit code 2.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from forgetlab.grok.sweep.spec import AXIS_KEYS, SEED_KEYS

HEAD = ["sweep", "panel", "alpha", "xi", "phase", "train %", "test %", "corrupted memorized %",
        "corrupted inverted %", "1 - xi %", "norm final / initial"]


def _panel(row: dict[str, str], keys: list[str]) -> str:
    return ", ".join(f"{k}={float(row[k]):g}" for k in keys) or "all runs"


def _panel_keys(folder: Path, rows: list[dict[str, str]]) -> list[str]:
    """The sweep's panel keys (sweep.json), else the config columns that vary (not alpha, xi or seeds)."""
    try:
        keys = json.loads((folder / "sweep.json").read_text(encoding="utf-8"))["spec"]["panel"]
        if keys:
            return [k for k in keys if k in rows[0]]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    cols = list(rows[0])[:list(rows[0]).index("train_acc")]
    skip = {"run_id", *AXIS_KEYS, *SEED_KEYS}
    return [k for k in cols if k not in skip and len({r[k] for r in rows}) > 1]


def _pct(text: str) -> str:
    return f"{100 * float(text):.1f}" if text not in ("", "nan") else "-"


SUMMARY_HEAD = ["sweep", "panel", "cells", "inverted >= 50% of the corrupted labels", "test >= 90%",
                "norm final / initial"]


def _sorted_rows(folder: Path) -> tuple[list[dict[str, str]], list[str]]:
    """The folder's runs sorted by panel value, alpha and xi, and its panel keys."""
    with (folder / "results.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    keys = _panel_keys(folder, rows) if rows else []
    rows.sort(key=lambda r: (tuple(float(r[k]) for k in keys), float(r["alpha"]), float(r["xi"])))
    return rows, keys


def _at_least(text: str, level: float) -> bool:
    """A results.csv number at or above ``level`` (an empty or nan field, a run without it, is not)."""
    return text not in ("", "nan") and float(text) >= level


def _norm_ratio(r: dict[str, str]) -> float:
    init = float(r["weight_norm_init"] or "nan")
    return float(r["weight_norm"]) / init if init == init and init > 0 else float("nan")


def rows_of(folder: Path) -> list[list[str]]:
    """The table rows of one sweep folder."""
    rows, keys = _sorted_rows(folder)
    return [[folder.name, _panel(r, keys), f"{float(r['alpha']):.2f}", f"{float(r['xi']):.2f}", r["phase"],
             _pct(r["train_acc"]), _pct(r["test_acc"]), _pct(r["corrupted_acc"]), _pct(r["inversion_acc"]),
             f"{100 * (1 - float(r['xi'])):.0f}", f"{_norm_ratio(r):.2f}"] for r in rows]


def summary_of(folder: Path) -> list[list[str]]:
    """One row per panel of a sweep folder: cells, un-memorizing cells, generalizing cells, norm ratios."""
    rows, keys = _sorted_rows(folder)
    panels: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        panels.setdefault(_panel(r, keys), []).append(r)
    out = []
    for name, runs in panels.items():
        ratios = [_norm_ratio(r) for r in runs]
        out.append([folder.name, name, str(len(runs)), str(sum(_at_least(r["inversion_acc"], 0.5) for r in runs)),
                    str(sum(_at_least(r["test_acc"], 0.9) for r in runs)), f"{min(ratios):.2f}-{max(ratios):.2f}"])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path, help="sweep folders holding results.csv")
    ap.add_argument("--summary", action="store_true", help="one row per panel instead of one per cell")
    args = ap.parse_args(argv)
    missing = [str(f / "results.csv") for f in args.folders if not (f / "results.csv").is_file()]
    if missing:
        print(f"folders: {missing[0]} does not exist (a sweep folder with results.csv is required)", file=sys.stderr)
        return 2
    head, table = (SUMMARY_HEAD, summary_of) if args.summary else (HEAD, rows_of)
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for folder in args.folders:
        for row in table(folder):
            print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How many runs of measured sweeps depend on the Forgetting/Confusion rule (forgetlab.grok.phases).

    .venv/bin/python benchmarks/phase_rule_sensitivity.py docs/benchmarks/phases/wd_p47 ...

Reads each folder's ``results.csv`` and relabels every run that fits neither rule nor labels (train and test
accuracy below 0.9) under several rules: the absolute collapse only (weight norm below 1e-2, the rule before
the finite-step one) and "final norm below f x initial norm" for f in 0.25, 0.5 (the rule), 0.75. Prints a
Markdown table of Forgetting / Confusion counts per folder and rule on stdout.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from forgetlab.grok.phases import ACC_THRESHOLD, COLLAPSE_NORM, FORGET_NORM_FRACTION

FRACTIONS = (None, 0.25, FORGET_NORM_FRACTION, 0.75)


def label(row: dict[str, str], fraction: float | None) -> str:
    """Forgetting or Confusion for a run below both thresholds, under one rule."""
    norm, init = float(row["weight_norm"]), float(row["weight_norm_init"] or "nan")
    collapsing = norm < COLLAPSE_NORM or (fraction is not None and norm < fraction * init)
    return "Forgetting" if collapsing else "Confusion"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path, help="sweep folders holding results.csv")
    args = ap.parse_args(argv)
    head = ["sweep", "runs below both thresholds"] + [
        "absolute only" if f is None else f"norm < {f} x initial" + (" (rule)" if f == FORGET_NORM_FRACTION else "")
        for f in FRACTIONS]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for folder in args.folders:
        path = folder / "results.csv"
        if not path.is_file():
            print(f"{path}: no results.csv", file=sys.stderr)
            return 2
        with path.open(newline="") as fh:
            rows = [r for r in csv.DictReader(fh)
                    if float(r["train_acc"]) < ACC_THRESHOLD and float(r["test_acc"]) < ACC_THRESHOLD]
        cells = []
        for f in FRACTIONS:
            n_forget = sum(label(r, f) == "Forgetting" for r in rows)
            cells.append(f"{n_forget} F / {len(rows) - n_forget} C")
        print("| " + " | ".join([folder.name, str(len(rows)), *cells]) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

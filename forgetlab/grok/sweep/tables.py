"""Phase counts of a sweep as a Markdown table, read from its ``results.csv`` (so a committed CSV regenerates the
tables in the docs): one row per panel, one column per phase, each cell's majority phase over seeds counted."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ...errors import BadInput, ForgetlabError
from .plots import panel_keys, panel_label, phase_grids, shown_labels
from .store import RESULTS_CSV, results_csv_records


def phase_counts(sweep_dir: str | Path) -> tuple[list[str], dict[str, Counter]]:
    """(panel keys, ``{panel label: Counter of majority phases over the alpha x xi cells}``) from results.csv."""
    root = Path(sweep_dir)
    path = root / RESULTS_CSV
    if not path.is_file():
        raise BadInput("SWEEP_DIR", str(root), f"a sweep folder with {RESULTS_CSV} (a sweep writes it when it "
                       "finishes: run or resume `forgetlab grok sweep` on this folder)")
    records = results_csv_records(path)
    if not records:
        raise ForgetlabError(f"{path}: no runs")
    keys = panel_keys(root, records)
    grids = phase_grids(records, keys)
    return keys, {panel_label(keys, pv): Counter(ph for ph, _a, _n in g["cells"].values())
                  for pv, g in grids.items()}


def phase_counts_markdown(sweep_dir: str | Path) -> str:
    """The counts as a Markdown table: panel, one column per phase (and Diverged when a cell is), cells in
    total."""
    _keys, counts = phase_counts(sweep_dir)
    labels = shown_labels(ph for c in counts.values() for ph in c)
    head = ["panel", *labels, "cells"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, c in counts.items():
        lines.append("| " + " | ".join([label, *(str(c.get(ph, 0)) for ph in labels), str(sum(c.values()))]) + " |")
    return "\n".join(lines) + "\n"


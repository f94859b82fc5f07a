"""Phase counts of a sweep as a Markdown table, read from its ``results.csv`` (so a committed CSV regenerates the
tables in the docs): one row per panel, one column per phase, each cell's majority phase over seeds counted."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from ...errors import BadInput, ForgetlabError
from .plots import manifest_panel_keys, panel_label, phase_grids, shown_labels
from .spec import AXIS_KEYS, SEED_KEYS, parse_cli_value
from .store import RESULTS_CSV, read_results_csv


def _value(text: str) -> Any:
    """A CSV cell back to a number or bool where it is one (``0.5`` -> 0.5, ``true`` -> True)."""
    return parse_cli_value(text) if text != "" else None


def _records(rows: list[dict[str, str]], keys: list[str]) -> list[dict[str, Any]]:
    """CSV rows in the shape :func:`~forgetlab.grok.sweep.plots.phase_grids` reads."""
    return [{"config": {k: _value(r[k]) for k in [*keys, *AXIS_KEYS] if k in r}, "summary": {"phase": r["phase"]}}
            for r in rows]


def _panel_keys(root: Path, rows: list[dict[str, str]]) -> list[str]:
    """The manifest's panel keys, else the config columns that vary (not alpha, xi or seeds)."""
    keys = manifest_panel_keys(root)
    if keys is not None:
        return keys
    skip = {"run_id", "phase", *AXIS_KEYS, *SEED_KEYS}
    config_cols = list(rows[0])[:list(rows[0]).index("train_acc")]
    return [k for k in config_cols if k not in skip and len({r[k] for r in rows}) > 1]


def phase_counts(sweep_dir: str | Path) -> tuple[list[str], dict[str, Counter]]:
    """(panel keys, ``{panel label: Counter of majority phases over the alpha x xi cells}``) from results.csv."""
    root = Path(sweep_dir)
    path = root / RESULTS_CSV
    if not path.is_file():
        raise BadInput("SWEEP_DIR", str(root), f"a sweep folder with {RESULTS_CSV} (a sweep writes it when it "
                       "finishes: run or resume `forgetlab grok sweep` on this folder)")
    rows = read_results_csv(path)
    if not rows:
        raise ForgetlabError(f"{path}: no runs")
    keys = _panel_keys(root, rows)
    grids = phase_grids(_records(rows, keys), keys)
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


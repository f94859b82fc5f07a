"""Phase-diagram and training-dynamics plots of a sweep folder (paper Fig. 3-5 style).

For each panel (one value of the panel keys, e.g. ``wd=5``) the alpha x xi grid is colored by phase
(:data:`forgetlab.grok.phases.PHASES`). With several runs per cell (seeds), a cell shows the majority phase,
faded toward white by the disagreement, with the agreement fraction written in it.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ...errors import ForgetlabError
from ...fmt import fmt
from ...runs import atomic_write_json, read_json
from ..phases import DIVERGED, LABELS, PHASES
from .spec import AXIS_KEYS, SEED_KEYS
from .store import MANIFEST, RESULTS_CSV, SweepStore, results_csv_records

#: One color per run label, in :data:`LABELS` order (the phases in the colorblind-safe Okabe-Ito palette,
#: Diverged in black).
PHASE_COLORS: dict[str, str] = dict(zip(LABELS, ("#009E73", "#56B4E9", "#0072B2", "#E69F00", "#999999",
                                                 "#D55E00", "#000000"), strict=True))


def majority_phase(phases: Sequence[str]) -> tuple[str, float]:
    """Most frequent phase and its share; ties go to the earlier phase in :data:`PHASES`."""
    counts = Counter(phases)
    best = max(counts, key=lambda k: (counts[k], -LABELS.index(k) if k in LABELS else -99))
    return best, counts[best] / len(phases)


def manifest_panel_keys(root: Path) -> list[str] | None:
    """The panel keys a sweep's manifest names, or None (none named, or no readable manifest)."""
    try:
        keys = read_json(root / MANIFEST)["spec"]["panel"]
    except (ForgetlabError, KeyError, TypeError):
        return None
    return None if keys is None else list(keys)


def panel_keys(root: Path, records: list[dict[str, Any]]) -> list[str]:
    """The manifest's panel keys, else the config keys that vary (not alpha, xi or seeds)."""
    keys = manifest_panel_keys(root)
    if keys is not None:
        return keys
    varying = [k for k in records[0]["config"] if len({json.dumps(r["config"][k]) for r in records}) > 1]
    return [k for k in varying if k not in AXIS_KEYS + SEED_KEYS]


def panel_label(keys: Sequence[str], values: Sequence[Any]) -> str:
    return ", ".join(f"{k}={fmt(v, 'g')}" for k, v in zip(keys, values, strict=True)) or "all runs"


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", label).strip("_") or "all"


def phase_grids(records: list[Mapping[str, Any]], panel_keys: Sequence[str]) -> dict[tuple, dict[str, Any]]:
    """Per panel value: sorted ``alphas``, ``xis`` (shared by all panels) and
    ``cells[(alpha, xi)] = (majority phase, agreement fraction, number of runs)``."""
    groups: dict[tuple, dict[tuple, list[str]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        c = r["config"]
        groups[tuple(c[k] for k in panel_keys)][(c["alpha"], c["xi"])].append(r["summary"]["phase"])
    # one alpha x xi frame for every panel (cells of unfinished runs stay blank)
    alphas = sorted({a for g in groups.values() for a, _ in g})
    xis = sorted({x for g in groups.values() for _, x in g})
    out = {}
    for pv in sorted(groups, key=lambda t: tuple(map(str, t)) if any(isinstance(x, str) for x in t) else t):
        cells = {ax: (*majority_phase(ph), len(ph)) for ax, ph in groups[pv].items()}
        out[pv] = {"alphas": alphas, "xis": xis, "cells": cells}
    return out


def _edges(vals: Sequence[float]) -> list[float]:
    if len(vals) == 1:
        return [vals[0] - 0.05, vals[0] + 0.05]
    mids = [(a + b) / 2 for a, b in itertools.pairwise(vals)]
    return [2 * vals[0] - mids[0], *mids, 2 * vals[-1] - mids[-1]]


def _draw_panel(ax: Any, grid: Mapping[str, Any], title: str) -> None:
    import numpy as np
    from matplotlib.colors import to_rgb

    alphas, xis, cells = grid["alphas"], grid["xis"], grid["cells"]
    img = np.ones((len(xis), len(alphas), 3))
    for (a, x), (ph, agree, _n) in cells.items():
        rgb = np.array(to_rgb(PHASE_COLORS.get(ph, "#000000")))
        img[xis.index(x), alphas.index(a)] = agree * rgb + (1 - agree) * 1.0
    ax.pcolormesh(_edges(alphas), _edges(xis), img, shading="flat")
    if len(alphas) * len(xis) <= 400:
        for (a, x), (_ph, agree, n) in cells.items():
            if agree < 1:
                ax.text(a, x, f"{round(agree * n)}/{n}", ha="center", va="center", fontsize=6)
    ax.set_xlabel(r"training data fraction $\alpha$")
    ax.set_ylabel(r"corruption fraction $\xi$")
    ax.set_title(title, fontsize=10)


def shown_labels(phases: Iterable[str]) -> tuple[str, ...]:
    """The labels a legend or a count table shows: the paper's six phases always, Diverged when present."""
    return (*PHASES, DIVERGED) if DIVERGED in set(phases) else PHASES


LEGEND_ENTRY_INCHES = 1.4  # width of one legend entry (patch and label at font size 8)


def _legend(fig: Any, multi_seed: bool, labels: Sequence[str]) -> None:
    """The phase legend under the panels, in as many columns as the figure's width holds (it was one row,
    clipped at both ends of a single panel)."""
    from matplotlib.patches import Patch

    handles = [Patch(color=PHASE_COLORS[p], label=p) for p in labels]
    title = "phase (faded: seeds disagree, k/n agree)" if multi_seed else "phase"
    ncol = max(1, min(len(labels), int(fig.get_figwidth() / LEGEND_ENTRY_INCHES)))
    fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=8, title=title,
               title_fontsize=8, frameon=False)


PHASE_COUNTS = "phase_counts.json"  # the majority-phase counts per panel, beside the figures


def plots_dir(sweep_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Where a sweep's figures go: ``out_dir``, else ``sweep_dir/plots``."""
    return Path(out_dir) if out_dir is not None else Path(sweep_dir) / "plots"


def plot_phase_diagram(sweep_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Write ``phase_<panel>.png`` per panel, ``phase_diagram.png`` (all panels) and ``phase_counts.json``
    (majority-phase counts per panel) under ``out_dir`` (default ``sweep_dir/plots``); return the PNG paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    root = Path(sweep_dir)
    records = SweepStore(root).records()
    if not records and (root / RESULTS_CSV).is_file():  # a sweep shared as results.csv and sweep.json alone
        records = results_csv_records(root / RESULTS_CSV)
    if not records:
        raise ForgetlabError(f"{root}: no finished runs to plot (run `forgetlab grok sweep --out {root}` first)")
    out = plots_dir(root, out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keys = panel_keys(root, records)
    grids = phase_grids(records, keys)
    multi = any(n > 1 for g in grids.values() for (_p, _a, n) in g["cells"].values())
    labels = shown_labels(ph for g in grids.values() for (ph, _a, _n) in g["cells"].values())
    paths, counts = [], {}
    for pv, grid in grids.items():
        label = panel_label(keys, pv)
        counts[label] = dict(Counter(ph for ph, _a, _n in grid["cells"].values()))
        fig, ax = plt.subplots(figsize=(5, 5.6))
        _draw_panel(ax, grid, label)
        fig.subplots_adjust(bottom=0.3)
        _legend(fig, multi, labels)
        path = out / f"phase_{_slug(label)}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    n = len(grids)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4.2 * rows + 1.0), squeeze=False)
    for ax, (pv, grid) in zip(axes.flat, grids.items(), strict=False):
        _draw_panel(ax, grid, panel_label(keys, pv))
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout(rect=(0, 0.12 if rows == 1 else 0.06, 1, 1))
    _legend(fig, multi, labels)
    path = out / "phase_diagram.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    paths.append(path)
    atomic_write_json(out / PHASE_COUNTS, {"panel_keys": keys, "counts": counts})
    return paths


def plot_dynamics(sweep_dir: str | Path, out_dir: str | Path | None = None, *, alpha: float | None = None,
                  max_curves: int = 6) -> list[Path]:
    """For each panel, training curves of runs that kept their history at one alpha (default: the one
    nearest 0.5) for up to ``max_curves`` xi values: train, test and corrupted-subset accuracy against step,
    the paper's "grok, then un-memorize" two stages. Writes ``dynamics_<panel>.png``; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    root = Path(sweep_dir)
    records = [r for r in SweepStore(root).records() if r.get("history")]
    if not records:
        return []
    out = plots_dir(root, out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keys = panel_keys(root, records)
    panels: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        panels[tuple(r["config"][k] for k in keys)].append(r)
    paths = []
    for pv, recs in sorted(panels.items(), key=lambda kv: tuple(map(str, kv[0]))):
        alphas = sorted({r["config"]["alpha"] for r in recs})
        a = alpha if alpha is not None else min(alphas, key=lambda v: abs(v - 0.5))
        first_seed: dict[float, dict] = {}
        for r in sorted(recs, key=lambda r: tuple(str(r["config"].get(k)) for k in SEED_KEYS)):
            if math.isclose(r["config"]["alpha"], a):
                first_seed.setdefault(r["config"]["xi"], r)
        xis = sorted(first_seed)
        if len(xis) > max_curves:
            xis = [xis[round(i * (len(xis) - 1) / (max_curves - 1))] for i in range(max_curves)]
        if not xis:
            continue
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
        cmap = plt.get_cmap("viridis")
        for i, xi in enumerate(xis):
            hist = first_seed[xi]["history"]
            steps = [h["step"] for h in hist]
            color = cmap(i / max(1, len(xis) - 1))
            for ax, key in zip(axes, ("train_acc", "test_acc", "corrupted_acc"), strict=True):
                ax.plot(steps, [h.get(key) if h.get(key) is not None else float("nan") for h in hist],
                        color=color, label=f"xi={fmt(xi, 'g')}")
        for ax, name in zip(axes, ("train (corrupted labels)", "test", "corrupted subset (memorized)"),
                            strict=True):
            ax.set_title(name, fontsize=10)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("accuracy")
        axes[2].legend(fontsize=7)
        fig.suptitle(f"{panel_label(keys, pv)}, alpha={fmt(a, 'g')}", fontsize=10)
        fig.tight_layout()
        path = out / f"dynamics_{_slug(panel_label(keys, pv))}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths

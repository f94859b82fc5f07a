"""The phase-diagram stage of ``forgetlab reproduce`` (paper Sec. 5, Figs. 3-5).

``small``: one weight-decay panel sized for the demo's budget (:data:`DEMO`), with bands that need several
cells of each of Coexistence, Partial Inversion, Full Inversion and Memorization, so one lucky cell cannot
pass. ``paper``: the paper's four panels as shipped (presets ``wd``, ``dropout``, ``bn``, ``minibatch``:
17 x 17 alpha x xi each), after printing their estimated time on this machine. ``smoke``: a tiny panel
(pipeline check; its bands are not meant to pass).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..stage import Claim, Figure, Stage, StageResult, figure_path

SOURCE = "paper Sec. 5, 'Effect of regularization': phase diagrams (arXiv v2 Figs. 3-5)"
INVERSION = ("Partial Inversion", "Full Inversion")
# The demo panel (see docs/benchmarks/phases.md for the probe that chose it) and its bands: the minimum number
# of cells of each phase over the whole panel.
DEMO: dict[str, Any] = {
    "spec": {"sweep": {"name": "demo", "panel": ["wd"], "keep_history": True, "max_batch_runs": 38},
             "fixed": {"p": 41, "op": "add", "width": 128, "act": "quadratic", "loss": "mse", "lr": 0.01,
                       "batch_size": 0, "steps": 800, "log_every": 50},
             "grid": {"alpha": {"start": 0.5, "stop": 0.9, "num": 5}, "xi": {"start": 0.1, "stop": 0.5, "num": 5},
                      "wd": [0.0, 8.0, 12.0]}},
    "min_cells": {"Coexistence": 3, "Partial Inversion": 2, "Full Inversion": 3, "Memorization": 10},
}
SMOKE: dict[str, Any] = {
    "spec": {"sweep": {"name": "smoke", "panel": ["wd"], "keep_history": True},
             "fixed": {"p": 13, "width": 32, "steps": 60, "log_every": 20},
             "grid": {"alpha": [0.5, 0.8], "xi": [0.1, 0.3], "wd": [0.0, 8.0]}},
    "min_cells": DEMO["min_cells"],
}
PAPER_PRESETS = ("wd", "dropout", "bn", "minibatch")
# Local worker processes per scale: on 2 cores two 1-thread workers beat one 2-thread process; the smoke panel
# is too small to pay for starting them.
WORKERS = {"small": 2, "paper": 2, "smoke": 1}


def _panel(folder: Path, name: str, spec: Any, workers: int) -> tuple[dict[str, dict[str, int]], list[Path], Any]:
    """Run one sweep into ``folder/name``, draw its phase diagram and dynamics; return the counts per panel."""
    from ...grok.sweep.plots import plot_dynamics, plot_phase_diagram
    from ...grok.sweep.run import run_sweep
    from ...runs import read_json

    sweep_dir = folder / name
    result = run_sweep(spec, sweep_dir, progress=False, backend="local", workers=workers)
    plots = folder / f"plots_{name}"
    pngs = plot_phase_diagram(sweep_dir, plots) + plot_dynamics(sweep_dir, plots)
    return read_json(plots / "phase_counts.json")["counts"], pngs, result


def _count(counts: dict[str, dict[str, int]], phases: tuple[str, ...], labels: list[str] | None = None) -> int:
    return sum(c.get(ph, 0) for label, c in counts.items() if labels is None or label in labels for ph in phases)


def demo_claims(counts: dict[str, dict[str, int]], min_cells: dict[str, int]) -> list[Claim]:
    """One claim per phase the paper's weight-decay diagram shows: at least ``min_cells[phase]`` cells of it,
    and, for the inversion phases, all of them at wd > 0 (none without weight decay)."""
    zero = [label for label in counts if float(label.split("=")[-1]) == 0.0]
    claims = []
    for phase, need in min_cells.items():
        n = _count(counts, (phase,))
        n_zero = _count(counts, (phase,), zero)
        ok = n >= need and (phase not in INVERSION or n_zero == 0)
        miss = "" if ok else (f"{need - n} cell(s) short" if n < need else f"{n_zero} cell(s) at wd 0")
        extra = " (all at wd > 0)" if phase in INVERSION else ""
        claims.append(Claim("grok", f"phases: {phase}", f"cells in {phase} over the demo panel{extra}",
                            "present in the wd phase diagrams: Memorization and Coexistence at wd 0, "
                            "Partial and Full Inversion as wd grows", SOURCE,
                            f"{n} cells ({n_zero} at wd 0)", f">= {need} cells{extra}", ok, miss))
    return claims


def _regularized_claim(name: str, counts: dict[str, dict[str, int]]) -> Claim:
    """Paper scale: the panel with the most inversion cells has >= 5% of its cells inverted, and more than the
    unregularized panel (value 0) when the sweep has one."""
    def share(label: str) -> tuple[int, int]:
        return _count(counts, INVERSION, [label]), sum(counts[label].values())

    best = max(counts, key=lambda label: share(label)[0])
    n_best, cells = share(best)
    ref = [label for label in counts if label.split("=")[-1] in ("0", "0.0")]
    n_ref = share(ref[0])[0] if ref else 0
    ok = n_best >= 0.05 * cells and (not ref or n_best > n_ref)
    return Claim("grok", f"phases {name}", "Partial + Full Inversion cells in the most inverting panel",
                 "regularization makes the network ignore the corrupted labels (inversion)", SOURCE,
                 f"{n_best}/{cells} at {best}" + (f" vs {n_ref} at {ref[0]}" if ref else ""),
                 ">= 5% of cells" + (", more than without the regularizer" if ref else ""), ok,
                 "" if ok else "too few inversion cells")


def _figures(folder: Path, pngs: list[Path], name: str) -> list[Figure]:
    out = [Figure(figure_path(p, folder), f"{name}: phase diagram (alpha x xi, colored by phase)")
           for p in pngs if p.stem == "phase_diagram"]
    out += [Figure(figure_path(p, folder), f"{name}: training dynamics " + p.stem.replace("dynamics_", "")
                   .replace("_", " ") + " (grok, then un-memorize)") for p in pngs if p.stem.startswith("dynamics")]
    return out


def _spec(data: dict[str, Any], source: str) -> Any:
    from ...grok.config import TrainConfig
    from ...grok.sweep.spec import spec_from_dict

    return spec_from_dict(data, config_cls=TrainConfig, source=source)


def _paper_specs() -> list[tuple[str, Any]]:
    """The four shipped paper presets, and their estimated time printed on stderr before anything trains."""
    from ...grok.config import TrainConfig
    from ...grok.sweep.estimate import estimate_sweep
    from ...grok.sweep.spec import build_spec

    specs = [(name, build_spec(preset=name, config_cls=TrainConfig)) for name in PAPER_PRESETS]
    total = 0.0
    for name, spec in specs:
        est = estimate_sweep(spec)
        total += est.seconds
        print(f"grok_phases (paper): {name}: {est.describe(WORKERS['paper'])}", file=sys.stderr, flush=True)
    print(f"grok_phases (paper): all four panels: about {total / WORKERS['paper'] / 3600:.1f} h with "
          f"{WORKERS['paper']} workers on free cores", file=sys.stderr, flush=True)
    return specs


def grok_phases(folder: Path, scale: str, advance: Callable[[float], None]) -> StageResult:
    """The demo panel (``small``, ``smoke``) or the paper's four panels (``paper``): sweeps, diagrams, claims."""
    if scale == "paper":
        specs = _paper_specs()
    else:
        demo = DEMO if scale == "small" else SMOKE
        specs = [("wd", _spec(demo["spec"], f"demo panel ({scale})"))]
    claims, figures, numbers, commands = [], [], {}, []
    for i, (name, spec) in enumerate(specs):
        counts, pngs, result = _panel(folder, name, spec, WORKERS[scale])
        numbers[name] = {"phase_counts": counts, "n_runs": result.n_runs, "sweep_seconds": result.seconds}
        figures += _figures(folder, pngs, name)
        if scale == "paper":
            if name != "minibatch":
                claims.append(_regularized_claim(name, counts))
            commands.append(f"forgetlab grok sweep --preset {name} --out DIR --workers {WORKERS[scale]}")
        else:
            claims += demo_claims(counts, (DEMO if scale == "small" else SMOKE)["min_cells"])
            commands.append(f"forgetlab reproduce --scale {scale} --only grok_phases ({spec.n_runs()} runs)")
        advance((i + 1) / len(specs))
    commands.append("forgetlab grok phase-diagram DIR [--table]")
    seeds = sorted({int(r.get("seed", 1)) for _, sp in specs for r in sp.expand()})
    return StageResult("grok_phases", "Phase diagrams", "grok", claims, figures, numbers, seeds=seeds,
                       commands=commands)


GROK_PHASES = Stage("grok_phases", "grok", "Phase diagrams", {"small": 150, "paper": 30 * 24 * 3600,
                                                             "smoke": 10}, grok_phases)

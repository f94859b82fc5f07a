"""The phase-diagram stage of ``forgetlab reproduce`` (paper Sec. 5, Figs. 3-5).

``small``: one weight-decay panel sized for the demo's budget (:data:`DEMO`) whose claims need several cells
each (:func:`demo_claims`): Coexistence and Memorization dominate at wd 0; Coexistence, Partial Inversion, Full
Inversion and Memorization are each present in at least :data:`MIN_CELLS` cells; Full Inversion needs weight
decay. ``paper``: the paper's four panels as shipped (presets ``wd``, ``dropout``, ``bn``, ``minibatch``: 17 x 17
alpha x xi each), after printing their estimated time on this machine. ``smoke``: a tiny panel (pipeline check;
its bands are not meant to pass).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..stage import Claim, Figure, Stage, StageResult, figure_path

SOURCE = "paper Sec. 5, 'Effect of regularization': phase diagrams (arXiv v2 Figs. 3-5)"
INVERSION = ("Partial Inversion", "Full Inversion")
# The demo panel: the paper's weight-decay panel reduced to p = 41, N = 128, 800 full-batch steps, alpha 0.5-0.9
# x xi 0.1-0.5 (5 x 5: the corner where the paper's inversion phases sit), wd {0, 8, 12} (at p = 41 wd 8 and 12
# invert within 800 steps; the paper's wd 15 collapses the weights at this size). Measured (75 runs, committed in
# docs/benchmarks/phases/demo_wd_p41): Coexistence 21, Partial Inversion 8, Full Inversion 17 (0 at wd 0),
# Memorization 25 cells. The wd-0 cells at alpha 0.9 that have not finished memorizing in 800 steps read as
# Partial Inversion (train 85-89%), so the claims ask for Full Inversion, not every inverted cell, at wd > 0.
DEMO: dict[str, Any] = {
    "spec": {"sweep": {"name": "demo", "panel": ["wd"], "keep_history": True},
             "fixed": {"p": 41, "op": "add", "width": 128, "act": "quadratic", "loss": "mse", "lr": 0.01,
                       "batch_size": 0, "steps": 800, "log_every": 50},
             "grid": {"alpha": {"start": 0.5, "stop": 0.9, "num": 5}, "xi": {"start": 0.1, "stop": 0.5, "num": 5},
                      "wd": [0.0, 8.0, 12.0]}},
}
MIN_CELLS = 3  # cells each demo phase needs: one or two lucky cells cannot pass a claim
DEMO_PHASES = ("Coexistence", "Partial Inversion", "Full Inversion", "Memorization")
SMOKE: dict[str, Any] = {
    "spec": {"sweep": {"name": "smoke", "panel": ["wd"], "keep_history": True},
             "fixed": {"p": 13, "width": 32, "steps": 60, "log_every": 20},
             "grid": {"alpha": [0.5, 0.8], "xi": [0.1, 0.3], "wd": [0.0, 8.0]}},
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


def _share(counts: dict[str, dict[str, int]], label: str, phases: tuple[str, ...]) -> tuple[int, int]:
    c = counts.get(label, {})
    return sum(c.get(ph, 0) for ph in phases), sum(c.values())


def _wd(label: str) -> float:
    return float(label.split("=")[-1])


def demo_claims(counts: dict[str, dict[str, int]]) -> list[Claim]:
    """The demo panel's claims (module docstring): wd 0 is mostly Coexistence and Memorization; each of
    :data:`DEMO_PHASES` holds at least :data:`MIN_CELLS` cells of the panel; Full Inversion holds none at wd 0 and
    at least :data:`MIN_CELLS` at every wd > 0."""
    wd0 = next(label for label in sorted(counts) if _wd(label) == 0.0)
    mem0, n0 = _share(counts, wd0, ("Coexistence", "Memorization"))
    claims = [Claim("grok", "phases wd 0", "share of grid points in Coexistence or Memorization at wd 0",
                    "wd 0: Coexistence and Memorization dominate (Confusion at small alpha)", SOURCE,
                    f"{mem0}/{n0} ({100 * mem0 / n0:.0f}%)", ">= 50%", mem0 >= 0.5 * n0,
                    "" if mem0 >= 0.5 * n0 else f"{100 * (0.5 - mem0 / n0):.0f} points below 50%")]
    for phase in DEMO_PHASES:
        n = _count(counts, (phase,))
        per = ", ".join(f"{label}: {counts[label].get(phase, 0)}" for label in sorted(counts, key=_wd))
        claims.append(Claim("grok", f"phases {phase}", f"grid points in {phase}, all panels",
                            f"{phase} is one of the phases of the weight-decay diagram", SOURCE,
                            f"{n} ({per})", f">= {MIN_CELLS} cells", n >= MIN_CELLS,
                            "" if n >= MIN_CELLS else f"{MIN_CELLS - n} cell(s) short"))
    fi0 = _count(counts, ("Full Inversion",), [wd0])
    fi_reg = {label: _count(counts, ("Full Inversion",), [label]) for label in counts if _wd(label) > 0}
    ok = fi0 == 0 and bool(fi_reg) and min(fi_reg.values()) >= MIN_CELLS
    claims.append(Claim("grok", "phases Full Inversion needs wd",
                        "Full Inversion cells at wd 0 and at each wd > 0",
                        "weight decay makes the network ignore the corrupted labels (Full Inversion)", SOURCE,
                        ", ".join(f"{label}: {counts[label].get('Full Inversion', 0)}"
                                  for label in sorted(counts, key=_wd)),
                        f"0 at wd 0, >= {MIN_CELLS} at each wd > 0", ok,
                        "" if ok else "Full Inversion without weight decay, or too little with it"))
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
            claims += demo_claims(counts)
            commands.append(f"forgetlab reproduce --scale {scale} --only grok_phases ({spec.n_runs()} runs)")
        advance((i + 1) / len(specs))
    commands.append("forgetlab grok phase-diagram DIR [--table]")
    seeds = sorted({int(r.get("seed", 1)) for _, sp in specs for r in sp.expand()})
    return StageResult("grok_phases", "Phase diagrams", "grok", claims, figures, numbers, seeds=seeds,
                       commands=commands)


GROK_PHASES = Stage("grok_phases", "grok", "Phase diagrams", {"small": 150, "paper": 30 * 24 * 3600,
                                                             "smoke": 10}, grok_phases)

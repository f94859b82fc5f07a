"""The phase-diagram stage of ``forgetlab reproduce`` (paper Sec. 5, Figs. 3-5).

``small``: one weight-decay panel sized for the demo's budget (:data:`DEMO`), with the two claims its size
supports (Coexistence and Memorization dominate at wd 0; inversion grows with wd). ``paper``: the paper's four panels as shipped (presets ``wd``, ``dropout``, ``bn``, ``minibatch``:
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
# The demo panel: the paper's weight-decay panel reduced to p = 31, N = 128, 800 full-batch steps, 5 x 5 alpha x
# xi, wd {0, 8} (at p = 31 the paper's wd 15 collapses the weights and wd 5 does not invert within 2000 steps;
# wd 8 inverts within 800: tests/grok/test_train.py::test_full_inversion_at_small_p). Its claims are the two the
# paper's diagram supports at this size: Coexistence and Memorization dominate at wd 0, and the inversion
# phases grow with wd. A stricter four-phase reading (several cells of each phase, no inversion at wd 0) was
# measured on a p = 41 panel and misses at 800 steps: wd-0 runs that have not finished memorizing read as
# Partial Inversion under the accuracy-only phase rule (docs/benchmarks/phases.md, "The demo's panel").
DEMO: dict[str, Any] = {
    "spec": {"sweep": {"name": "demo", "panel": ["wd"], "keep_history": True},
             "fixed": {"p": 31, "op": "add", "width": 128, "act": "quadratic", "loss": "mse", "lr": 0.01,
                       "batch_size": 0, "steps": 800, "log_every": 50},
             "grid": {"alpha": {"start": 0.1, "stop": 0.9, "num": 5}, "xi": {"start": 0.1, "stop": 0.9, "num": 5},
                      "wd": [0.0, 8.0]}},
}
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


def demo_claims(counts: dict[str, dict[str, int]]) -> list[Claim]:
    """The demo panel's two claims: at wd 0 Coexistence and Memorization hold at least half the cells; at the
    largest wd the inversion phases hold more cells than at wd 0, and some."""
    labels = sorted(counts)
    wd0 = next(label for label in labels if float(label.split("=")[-1]) == 0.0)
    wd_max = max(labels, key=lambda s: float(s.split("=")[-1]))
    mem0, n0 = _share(counts, wd0, ("Coexistence", "Memorization"))
    inv0, _ = _share(counts, wd0, INVERSION)
    inv_hi, n_hi = _share(counts, wd_max, INVERSION)
    return [
        Claim("grok", "phases wd 0", "share of grid points in Coexistence or Memorization at wd 0",
              "wd 0: Coexistence and Memorization dominate (Confusion at small alpha)", SOURCE,
              f"{mem0}/{n0} ({100 * mem0 / n0:.0f}%)", ">= 50%", mem0 >= 0.5 * n0,
              "" if mem0 >= 0.5 * n0 else f"{100 * (0.5 - mem0 / n0):.0f} points below 50%"),
        Claim("grok", f"phases {wd_max}", "grid points in Partial or Full Inversion at the largest wd vs wd 0",
              "Partial and Full Inversion appear as wd grows", SOURCE,
              f"{inv_hi}/{n_hi} at {wd_max} vs {inv0}/{n0} at {wd0}", "more than at wd 0, and > 0",
              inv_hi > inv0 and inv_hi > 0, "" if inv_hi > inv0 else "no growth of the inversion phases"),
    ]


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

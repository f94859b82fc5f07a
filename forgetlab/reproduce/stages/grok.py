"""The grokking stages of ``forgetlab reproduce``: the paper's cases A0-A8 and a weight-decay phase diagram.

Every number shown comes from the run the stage makes now (or its cache); the authors' numbers are cited with
their source by :mod:`forgetlab.grok.cases`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...fmt import fmt
from ..stage import Claim, Figure, Stage, StageResult, figure_path


def _fmt(value: Any, key: str = "") -> str:
    """Accuracies as percentages; every other number (IPR, norms, correlations) as a plain number."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v, k)}" for k, v in value.items() if not isinstance(v, (dict, list)))
    is_accuracy = key.endswith("_acc") or key.startswith("accuracy")
    return fmt(value, "pct" if is_accuracy else "4g") if value is not None else str(value)


_GROK_KEYS = ("accuracy_all_pairs", "train_acc", "test_acc", "corrupted_acc", "inversion_acc", "mean_ipr",
              "weight_norm", "phase", "train_target", "ipr_bimodality_coefficient", "corr_abs_gamma_ipr",
              "low_first_fraction_reaching_band", "high_first_30pct_test_acc", "low_first_50pct_test_acc",
              "random_50pct_test_acc", "official_normalized_updates", "normalized_train_acc",
              "normalized_test_acc", "normalized_phase")


# Keyword arguments of the grokking cases per scale: the paper's sizes except at ``smoke``.
CASES_KW: dict[str, dict[str, Any]] = {"small": {}, "paper": {}, "smoke": {"cases": ["A0", "A1"], "p": 23,
                                                                          "width": 64}}


def grok_cases(folder: Path, scale: str, advance: Callable[[float], None]) -> StageResult:
    """The paper's cases A0-A8 at the paper's own size (p=97, N=500) at every scale but ``smoke``."""
    from ...grok.cases import case_configs, run_cases

    cases = run_cases(folder / "cases", overwrite=True, advance=advance, **CASES_KW[scale])
    claims, figures = [], []
    for c in cases:
        ours = {k: c.ours[k] for k in _GROK_KEYS if k in c.ours}
        claims.append(Claim("grok", c.name, c.claim, c.authors, c.source, _fmt(ours), c.band, c.passed,
                            "" if c.passed else f"outside the band: {_fmt(ours)}"))
        for fig in c.figures:
            kind = Path(fig).stem
            caption = {"accuracy": f"{c.name}: accuracy curves (train, corrupted, clean, test, inversion)",
                       "ipr": f"{c.name}: IPR histogram at initialization and at the end",
                       "prune": f"{c.name}: pruning curves (low-IPR first, high-IPR first, random control)"}
            figures.append(Figure(figure_path(fig, folder), caption.get(kind, f"{c.name}: {kind}")))
    advance(1.0)
    return StageResult("grok_cases", "Grokking cases A0-A8 (p=97, N=500)", "grok", claims, figures,
                       {c.name: c.ours for c in cases},
                       seeds=sorted({cfg.seed for cfg in case_configs().values()}),
                       commands=["forgetlab grok reproduce --out DIR"])


# The reduced weight-decay panels. At p=31, N=128 the paper's wd 15 collapses the weights (Forgetting) and wd 5
# does not invert within 2000 steps (docs/benchmarks/sweep.md); wd 8 inverts within 800 steps
# (tests/grok/test_train.py::test_full_inversion_at_small_p), so the small panel uses wd {0, 8}. None: the
# paper's full panel (the wd preset as shipped).
PANELS: dict[str, dict[str, dict[str, Any]] | None] = {
    "small": {"fixed": {"p": 31, "width": 128, "steps": 800, "log_every": 50},
              "grid": {"alpha": {"start": 0.1, "stop": 0.9, "num": 5}, "xi": {"start": 0.1, "stop": 0.9, "num": 5},
                       "wd": [0.0, 8.0]}},
    "paper": None,
    "smoke": {"fixed": {"p": 13, "width": 32, "steps": 60, "log_every": 20},
              "grid": {"alpha": [0.5, 0.8], "xi": [0.1, 0.3], "wd": [0.0, 8.0]}},
}


def _wd_panel_spec(scale: str) -> Any:
    """The paper's weight-decay panel with the overrides of :data:`PANELS` (histories kept for the dynamics
    plots when reduced)."""
    import tomllib

    from ...grok.config import TrainConfig
    from ...grok.sweep.spec import preset_path, spec_from_dict

    data = tomllib.loads(preset_path("wd").read_text())
    panel = PANELS[scale]
    if panel is not None:
        data["fixed"].update(panel["fixed"])
        data["grid"].update(panel["grid"])
        data.setdefault("sweep", {})["keep_history"] = True
    return spec_from_dict(data, config_cls=TrainConfig, source=f"wd preset ({scale})")


def grok_phases(folder: Path, scale: str, advance: Callable[[float], None]) -> StageResult:
    """A batched, resumable sweep of the weight-decay panel, its phase diagram and two-stage dynamics."""
    from ...grok.config import TrainConfig
    from ...grok.sweep.plots import plot_dynamics, plot_phase_diagram
    from ...grok.sweep.run import run_sweep
    from ...runs import read_json

    spec = _wd_panel_spec(scale)
    sweep_dir = folder / "sweep"
    result = run_sweep(spec, sweep_dir, progress=False)
    advance(0.9)
    phase_pngs = plot_phase_diagram(sweep_dir, folder / "plots")
    dyn_pngs = plot_dynamics(sweep_dir, folder / "plots")
    counts: dict[str, dict[str, int]] = read_json(folder / "plots" / "phase_counts.json")["counts"]

    def share(label: str, phases: tuple[str, ...]) -> tuple[int, int]:
        c = counts.get(label, {})
        return sum(c.get(ph, 0) for ph in phases), sum(c.values())

    labels = sorted(counts)
    wd0 = next(label for label in labels if label.endswith("=0") or label.endswith("=0.0"))
    wd_max = max(labels, key=lambda s: float(s.split("=")[-1]))
    mem0, n0 = share(wd0, ("Coexistence", "Memorization"))
    inv0, _ = share(wd0, ("Partial Inversion", "Full Inversion"))
    inv_hi, n_hi = share(wd_max, ("Partial Inversion", "Full Inversion"))
    source = "paper, 'Effect of regularization': weight-decay phase diagrams (arXiv v2)"
    claims = [
        Claim("grok", "phases wd 0", "share of grid points in Coexistence or Memorization at wd 0",
              "wd 0: Coexistence and Memorization dominate (Confusion at small alpha)", source,
              f"{mem0}/{n0} ({100 * mem0 / n0:.0f}%)", ">= 50%", mem0 >= 0.5 * n0,
              "" if mem0 >= 0.5 * n0 else f"{100 * (0.5 - mem0 / n0):.0f} points below 50%"),
        Claim("grok", f"phases {wd_max}", "grid points in Partial or Full Inversion at the largest wd vs wd 0",
              "Partial and Full Inversion appear as wd grows", source,
              f"{inv_hi}/{n_hi} at {wd_max} vs {inv0}/{n0} at {wd0}", "more than at wd 0, and > 0",
              inv_hi > inv0 and inv_hi > 0, "" if inv_hi > inv0 else "no growth of the inversion phases"),
    ]
    figures = [Figure(figure_path(p, folder), "Phase diagram " + p.stem.replace("phase_", "").replace("_", " ")
                      + " (alpha x xi, colored by phase)") for p in phase_pngs if p.stem == "phase_diagram"]
    figures += [Figure(figure_path(p, folder), "Training dynamics " + p.stem.replace("dynamics_", "").replace("_", " ")
                       + ": grok, then un-memorize") for p in dyn_pngs]
    advance(1.0)
    return StageResult("grok_phases", "Weight-decay phase diagram", "grok", claims, figures,
                       {"phase_counts": counts, "n_runs": result.n_runs, "sweep_seconds": result.seconds},
                       seeds=sorted({int(r.get("seed", TrainConfig().seed)) for r in spec.expand()}),
                       commands=[f"forgetlab grok sweep --preset wd --out DIR (scale {scale}: {spec.n_runs()} runs)",
                                 "forgetlab grok phase-diagram DIR"])


GROK_CASES = Stage("grok_cases", "grok", "Grokking cases A0-A8 (p=97, N=500)",
                   {"small": 480, "paper": 480, "smoke": 10}, grok_cases)
GROK_PHASES = Stage("grok_phases", "grok", "Weight-decay phase diagram",
                    {"small": 240, "paper": 36000, "smoke": 10}, grok_phases)

"""The grokking stage for other architectures (paper App. G): Transformer and 3-layer ReLU MLP cases, 3 seeds each.

Too heavy for ``--scale small`` (24 runs of 3,000-5,000 full-batch steps at p = 97 take hours on 2 CPU cores), so
at that scale the stage reports itself as not run, with the command that runs it and where measured results are
documented; ``--scale paper`` runs it at the paper's p = 97.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..stage import Claim, Figure, Stage, StageResult, figure_path
from .grok import fmt_ours

# Keyword arguments of run_arch_cases per scale; None: not run at that scale.
ARCH_KW: dict[str, dict[str, Any] | None] = {
    "small": None,
    "paper": {"p": 97},
    "smoke": {"p": 11, "width": 32, "steps": {"transformer": 30, "deep": 30}, "cases": ["T1", "D4"]},
}
PAPER_HOURS = 10  # fp32 on 2 busy Zen 3 cores; bf16 on the AMX Xeon: 5.1 h summed over arch.json's cases
COMMANDS = ["forgetlab reproduce --scale paper --only grok_arch --out DIR",
            "forgetlab grok reproduce --cases T1,T2,T3,T4,D1,D2,D3,D4 --resume --out DIR "
            "[--matmul-precision bf16 on CPUs with bf16 units]"]
TITLE = "Grokking, other architectures: Transformer and 3-layer MLP (App. G, 3 seeds)"
_KEYS = ("phases", "train_acc_min", "train_acc_max", "test_acc_min", "test_acc_max", "mean_ipr_min",
         "mean_ipr_max")


def grok_arch(folder: Path, scale: str, advance: Callable[[float], None]) -> StageResult:
    """App. G's cases T1-T4 and D1-D4 at ``--scale paper``; at ``small`` a not-run result with its command."""
    kw = ARCH_KW[scale]
    if kw is None:
        advance(1.0)
        return StageResult("grok_arch", TITLE, "grok", commands=list(COMMANDS),
                           not_run=f"at --scale {scale} (24 runs of 3,000-5,000 full-batch steps at p = 97: "
                                   f"about {PAPER_HOURS} h on 2 CPU cores; results measured at p = 97 with bf16 "
                                   "products and at p = 47 are in docs/benchmarks/grok.md).")
    from ...grok.arch_cases import SEEDS, run_arch_cases

    # resume: a rerun of the stage into the same folder keeps the runs that finished (hours at p = 97)
    cases = run_arch_cases(folder / "arch", overwrite=True, resume=True, advance=advance, **kw)
    claims, figures = [], []
    for c in cases:
        ours = {k: c.ours[k] for k in _KEYS if k in c.ours}
        claims.append(Claim("grok", c.name, c.claim, c.authors, c.source, fmt_ours(ours), c.band, c.passed,
                            "" if c.passed else f"{c.ours['n_in_phase']}/{c.ours['n_seeds']} seeds in the phase"))
        figures += [Figure(figure_path(f, folder), f"{c.name} (seed 1): " + ("accuracy curves" if "accuracy" in f
                                                                             else "IPR histogram"))
                    for f in c.figures if Path(f).is_file()]
    ipr = folder / "arch" / "ipr_over_training.png"
    if ipr.is_file():
        figures.insert(0, Figure(figure_path(ipr, folder), "Mean IPR over training of each App. G case (seed 1)"))
    advance(1.0)
    return StageResult("grok_arch", TITLE, "grok", claims, figures, {c.name: c.ours for c in cases},
                       seeds=list(SEEDS), commands=list(COMMANDS))


GROK_ARCH = Stage("grok_arch", "grok", TITLE, {"small": 1, "paper": PAPER_HOURS * 3600, "smoke": 20}, grok_arch)

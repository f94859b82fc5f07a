"""The grokking cases stage of ``forgetlab reproduce``: the paper's cases A0-A9 (the phase diagrams are
:mod:`forgetlab.reproduce.stages.grok_phases`, other architectures :mod:`forgetlab.reproduce.stages.grok_arch`).

Every number shown comes from the run the stage makes now (or its cache); the authors' numbers are cited with
their source by :mod:`forgetlab.grok.cases`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...fmt import fmt
from ..stage import Claim, Figure, Stage, StageResult, figure_path


def fmt_ours(value: Any, key: str = "") -> str:
    """Accuracies as percentages; every other number (IPR, norms, correlations) as a plain number."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {fmt_ours(v, k)}" for k, v in value.items() if not isinstance(v, (dict, list)))
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


_CAPTIONS = {"accuracy": "accuracy curves (train, corrupted, clean, test, inversion)",
             "ipr": "IPR histogram at initialization and at the end",
             "prune": "pruning curves (low-IPR first, high-IPR first, random control)",
             "gamma_ipr": "|gamma_k| against IPR_k with BatchNorm (A8), and the output-weight norm against IPR_k "
                          "in the same setting without BatchNorm (A9)"}


def grok_cases(folder: Path, scale: str, advance: Callable[[float], None]) -> StageResult:
    """The paper's cases A0-A9 at the paper's own size (p=97, N=500) at every scale but ``smoke``."""
    from ...grok.cases import IPR_FIGURE, case_configs, run_cases

    cases = run_cases(folder / "cases", overwrite=True, advance=advance, **CASES_KW[scale])
    claims, figures = [], []
    for c in cases:
        ours = {k: c.ours[k] for k in _GROK_KEYS if k in c.ours}
        claims.append(Claim("grok", c.name, c.claim, c.authors, c.source, fmt_ours(ours), c.band, c.passed,
                            "" if c.passed else f"outside the band: {fmt_ours(ours)}"))
        for fig in c.figures:
            kind = Path(fig).stem
            figures.append(Figure(figure_path(fig, folder), f"{c.name}: {_CAPTIONS.get(kind, kind)}"))
    ipr = folder / "cases" / IPR_FIGURE
    if ipr.is_file():
        figures.insert(0, Figure(figure_path(ipr, folder), "Mean IPR over training of the trained cases "
                                 "(paper Fig. 2): periodic neurons appear as the network generalizes"))
    advance(1.0)
    return StageResult("grok_cases", "Grokking cases A0-A9 (p=97, N=500)", "grok", claims, figures,
                       {c.name: c.ours for c in cases},
                       seeds=sorted({cfg.seed for cfg in case_configs().values()}),
                       commands=["forgetlab grok reproduce --out DIR"])




GROK_CASES = Stage("grok_cases", "grok", "Grokking cases A0-A9 (p=97, N=500)",
                   {"small": 320, "paper": 320, "smoke": 10}, grok_cases)

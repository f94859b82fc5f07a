"""The paper's App. G claims for other architectures, as checked cases with 3 seeds each.

What the paper states for 1-layer Transformers and 3-layer ReLU MLPs (Sec. 2.2 and App. G): "We observe weight
decay to be essential for these models to have the full inversion phase" (Fig. 7: Full Inversion at wd 50);
"Dropout mostly leads to an extended confusion phase"; "BatchNorm for 3-layer MLPs only has coexistence
phases" (G.4). Each case trains one setting with seeds 1, 2 and 3 and passes when every seed lands in a phase
the claim allows (:mod:`forgetlab.grok.phases`), so one lucky seed cannot pass it:

- T1-T4: the authors' encoder-only Transformer (:mod:`forgetlab.grok.transformer`; d = 128, 4 heads, ReLU,
  MSE, AdamW lr 1e-3, betas (0.9, 0.98), 3,000 full-batch steps): no regularization and LayerNorm (no Full
  Inversion without weight decay; the authors' Transformer has no BatchNorm, LayerNorm is its normalization),
  weight decay 50 (Full Inversion), dropout 0.5 (Confusion).
- D1-D4: the 3-layer ReLU MLP (``depth = 3``, width 500, 5,000 full-batch steps): no regularization (no Full
  Inversion), weight decay 50 (Full Inversion), dropout 0.5 (Confusion), BatchNorm (Coexistence).

The point alpha 0.8, xi 0.2 is the one the paper's App. G figures select (Figs. 12 and 14); the strengths are
Fig. 7's (wd 50) and ours (dropout 0.5, above the 0.1 the paper finds useless for Transformers and the 0.05 that
already stops 3-layer MLPs from memorizing). The modulus defaults to the paper's 97; a smaller p is allowed and
recorded (the time grows with p^2) and changes what the bands mean: ``docs/benchmarks/grok.md`` has the p = 97
runs (bf16 products), the p = 47 runs and the probes of other strengths, precisions and parameter groups.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import BadInput, ForgetlabError
from ..runs import atomic_write_json, atomic_write_text, prepare_out_dir, provenance
from .cases import PAPER, CaseResult, markdown_table
from .config import TrainConfig, batch_key, training_notes
from .phases import PHASES
from .record import load_config, load_run, save_run, save_run_plots
from .train import TrainResult, train_many

SEEDS = (1, 2, 3)
SOURCE = "paper App. G, Fig. 7 (Transformers and 3-layer ReLU MLPs)"


NOT_FULL_INVERSION = tuple(ph for ph in PHASES if ph != "Full Inversion")


@dataclass(frozen=True)
class ArchCase:
    """One claim about one architecture under one regularizer: the phases it allows and the overrides of its
    base setting."""

    name: str
    model: str  # "transformer" or "deep"
    regularizer: str
    phases: tuple[str, ...]
    authors: str
    overrides: dict[str, Any]

    @property
    def claimed(self) -> str:
        """The claim's phases in words."""
        return "not Full Inversion" if self.phases == NOT_FULL_INVERSION else " or ".join(self.phases)


ESSENTIAL = "weight decay is essential for Full Inversion (Sec. 2.2)"
TRANSFORMER = dict(model="transformer", act="relu", loss="mse", lr=1e-3, steps=3000, alpha=0.8, xi=0.2,
                   log_every=100)
DEEP = dict(model="mlp", depth=3, act="relu", loss="mse", width=500, lr=1e-3, steps=5000, alpha=0.8, xi=0.2,
            log_every=100)
ARCH_CASES: dict[str, ArchCase] = {c.name: c for c in (
    ArchCase("T1", "transformer", "none", NOT_FULL_INVERSION, ESSENTIAL, {}),
    ArchCase("T2", "transformer", "weight decay 50", ("Full Inversion",), "Full Inversion at wd 50 (Fig. 7a)",
             {"wd": 50.0}),
    ArchCase("T3", "transformer", "dropout 0.5", ("Confusion",),
             "Dropout mostly leads to an extended confusion phase (Sec. 2.2, G.2)", {"dropout": 0.5}),
    ArchCase("T4", "transformer", "LayerNorm", NOT_FULL_INVERSION, ESSENTIAL, {"layernorm": True}),
    ArchCase("D1", "deep", "none", NOT_FULL_INVERSION, ESSENTIAL, {}),
    ArchCase("D2", "deep", "weight decay 50", ("Full Inversion",), "Full Inversion at wd 50 (Fig. 7b)",
             {"wd": 50.0}),
    ArchCase("D3", "deep", "dropout 0.5", ("Confusion",),
             "Dropout mostly leads to an extended confusion phase (Sec. 2.2, G)", {"dropout": 0.5}),
    ArchCase("D4", "deep", "BatchNorm", ("Coexistence",), "BatchNorm for 3-layer MLPs only has coexistence "
             "phases (G.4)", {"batchnorm": True}),
)}


def arch_case_configs(p: int = 97, width: int = 500, steps: dict[str, int] | None = None,
                      matmul_precision: str = "fp32", init_scale: float = 1.0) -> dict[str, list[TrainConfig]]:
    """The three seeds' configs of every case, their products in ``matmul_precision``, their initial weights
    times ``init_scale``; ``steps`` may override the steps per model ("transformer", "deep") for pipeline
    tests."""
    out = {}
    for name, case in ARCH_CASES.items():
        base = dict(TRANSFORMER if case.model == "transformer" else DEEP, p=p, matmul_precision=matmul_precision,
                    init_scale=init_scale)
        if case.model == "deep":
            base["width"] = width
        if steps and case.model in steps:
            base["steps"] = steps[case.model]
            base["log_every"] = max(1, steps[case.model] // 20)
        out[name] = [TrainConfig(**base, **case.overrides, seed=s).validate() for s in SEEDS]
    return out


def _check(case: ArchCase, results: list[TrainResult]) -> CaseResult:
    """Every seed in a phase the claim allows; ours: each seed's phase, train and test accuracy, mean IPR."""
    phases = [r.summary["phase"] for r in results]
    ours: dict[str, Any] = {"phases": ", ".join(phases), "n_in_phase": sum(ph in case.phases for ph in phases),
                            "n_seeds": len(results)}
    for key in ("train_acc", "test_acc", "mean_ipr"):
        vals = [r.summary[key] for r in results]
        ours[f"{key}_min"], ours[f"{key}_max"] = min(vals), max(vals)
    c0 = results[0].config
    what = "Transformer" if c0.model == "transformer" else f"{c0.depth}-layer {c0.act} MLP (N={c0.width})"
    setting = f"p={c0.p}, alpha {c0.alpha}, xi {c0.xi}, {c0.steps} steps, lr {c0.lr}"
    setting += training_notes(c0)
    claim = f"{what}, {case.regularizer} ({setting}): {case.claimed}"
    band = f"all {len(results)} seeds (1, 2, 3): {case.claimed}"
    return CaseResult(case.name, claim, case.authors, SOURCE, ours, band,
                      ours["n_in_phase"] == len(results), 0.0)


def _finished(folder: Path, cfg: TrainConfig) -> TrainResult | None:
    """The run already in ``folder`` when it finished with exactly ``cfg``; else None (it is trained again)."""
    try:  # the config first: a run of another setting is not read in full
        if not (folder / "summary.json").is_file() or load_config(folder) != cfg:
            return None
        return load_run(folder)
    except ForgetlabError:  # a damaged record is retrained, not trusted
        return None


def run_arch_cases(out_dir: str | os.PathLike, cases: list[str] | None = None, *, p: int = 97, width: int = 500,
                   steps: dict[str, int] | None = None, progress: bool = False, overwrite: bool = False,
                   resume: bool = False, advance: Callable[[float], None] | None = None,
                   matmul_precision: str = "fp32", init_scale: float = 1.0) -> list[CaseResult]:
    """Train the selected cases (default all; runs of one shape as one batch), write each seed's run folder,
    ``arch.json``, ``arch.md`` and ``ipr_over_training.png`` under ``out_dir``; return the results in order.

    With ``resume`` the folder may hold an earlier, interrupted call's runs: each seed folder that finished with
    the same config is read back instead of trained (hours at p = 97). ``advance(fraction)`` is called after
    each batch with the fraction of run-steps done; ``matmul_precision`` trains every run in that precision and
    ``init_scale`` multiplies every run's initial weights (1: the authors' initialization).
    """
    wanted = list(ARCH_CASES) if not cases else list(dict.fromkeys(cases))
    for c in wanted:
        if c not in ARCH_CASES:
            raise BadInput("cases", c, "any of " + ", ".join(ARCH_CASES))
    out = prepare_out_dir(out_dir, overwrite=overwrite or resume)
    cfgs = arch_case_configs(p, width, steps, matmul_precision, init_scale)
    results: dict[tuple[str, int], TrainResult] = {}
    groups: dict[tuple, list[tuple[str, TrainConfig]]] = {}
    for name in wanted:
        for cfg in cfgs[name]:
            folder = out / name / f"seed{cfg.seed}"
            done = _finished(folder, cfg) if resume else None
            if done is not None:
                if cfg.seed == SEEDS[0] and not (folder / "accuracy.png").is_file():
                    save_run_plots(folder, done)  # the figures the report shows (a run saved without plots)
                results[name, cfg.seed] = done
            else:
                groups.setdefault(batch_key(cfg), []).append((name, cfg))
    total = sum(c.steps for name in wanted for c in cfgs[name])
    done_steps = sum(r.config.steps for r in results.values())
    for members in groups.values():
        for (name, cfg), r in zip(members, train_many([c for _, c in members], progress=progress), strict=True):
            folder = out / name / f"seed{cfg.seed}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "summary.json").unlink(missing_ok=True)  # save_run writes it last: the run's done-mark
            save_run(folder, r)
            results[name, cfg.seed] = r
            done_steps += cfg.steps
        if advance is not None:
            advance(done_steps / total)
    trained = {name: [results[name, c.seed] for c in cfgs[name]] for name in wanted}
    checked = []
    for name in wanted:
        res = _check(ARCH_CASES[name], trained[name])
        res.seconds = sum(r.summary["seconds"] for r in trained[name])
        res.figures = [str(out / name / "seed1" / f) for f in ("accuracy.png", "ipr.png")]
        checked.append(res)
    _write_outputs(out, checked, trained)
    return checked


IPR_FIGURE = "ipr_over_training.png"


def _write_outputs(out: Path, checked: list[CaseResult], trained: dict[str, list[TrainResult]]) -> None:
    """``arch.json``, ``arch.md`` and the mean IPR over training of each case's first seed."""
    from .plots import plot_ipr_over_training

    plot_ipr_over_training({f"{n} ({rs[0].summary['phase']})": rs[0].history for n, rs in trained.items()},
                           out / IPR_FIGURE, "mean IPR over training, App. G cases (seed 1)")
    configs = {n: [asdict(r.config) for r in rs] for n, rs in trained.items()}
    atomic_write_json(out / "arch.json", {"paper": PAPER, "cases": [asdict(r) for r in checked],
                                          "configs": configs, "passed": all(r.passed for r in checked),
                                          **provenance(cases=sorted(trained))})
    atomic_write_text(out / "arch.md", markdown_table(checked))


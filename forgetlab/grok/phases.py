"""Phase classification of a trained network (paper App. C, Table 2): the single source of the thresholds.

Accuracies are fractions; ``train_acc`` is measured against the (corrupted) training labels.

| phase              | test        | train                              | weights                              |
|--------------------|-------------|------------------------------------|--------------------------------------|
| Coexistence        | >= 0.9      | >= 0.9                             | any                                  |
| Partial Inversion  | >= 0.9      | in [1.05 - xi, 0.9)  (empty when xi <= 0.15) | any                        |
| Full Inversion     | >= 0.9      | < 1.05 - xi                        | any                                  |
| Memorization       | < 0.9       | >= 0.9                             | any                                  |
| Forgetting         | < 0.9       | < 0.9                              | collapsing (below)                   |
| Confusion          | < 0.9       | < 0.9                              | not collapsing                       |

A run whose final loss or weights are not finite (NaN or infinite: a learning rate or initial scale too large)
carries the label ``DIVERGED`` instead, which is no phase of the paper: its accuracies come from NaN outputs and
say nothing about what it learned, and under the rules above it would read as Confusion.

The paper's Table 2 gives Forgetting and Confusion the same accuracies; what separates them is why the
network fits nothing: in Forgetting weight decay wins and the weights shrink towards zero, in Confusion the
network keeps weights of its initial size or larger and still fits neither rule nor labels (too little data,
too much dropout). At a finite number of steps a run at large weight decay may still be on its way to zero, so
"collapsing" is judged against the run's own initial weight norm, which is scale-free across architectures:

- collapsing: the final weight norm is below ``FORGET_NORM_FRACTION`` (1/2) of the initial norm, or below
  ``COLLAPSE_NORM`` in absolute terms, or the outputs are constant (spread below ``COLLAPSE_SPREAD``).

Why one half: a run that learns (memorizes or generalizes) keeps its total norm near or above its initial
value at these initializations, while decay-driven collapse passes from the initial norm to zero within a few
hundred steps (p = 47, wd 20: 13.3 -> 6.8 -> 1.3 -> 0.02 at steps 0, 600, 1200, 1400), so a run caught in
between counts as Forgetting, as the paper's finite-step panels show it. ``docs/benchmarks/phases.md`` shows how
many cells of the measured panels depend on the fraction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import check_range

PHASES = ("Coexistence", "Partial Inversion", "Full Inversion", "Memorization", "Forgetting", "Confusion")
ACC_THRESHOLD = 0.9
INVERSION_MARGIN = 1.05  # full inversion below (1.05 - xi): clean fraction plus a 5-point margin
COLLAPSE_NORM = 1e-2  # total L2 norm of all weights below which the network counts as collapsed
COLLAPSE_SPREAD = 1e-6  # max - min of all outputs below which the output counts as constant
FORGET_NORM_FRACTION = 0.5  # final / initial weight norm below which the weights count as collapsing
DIVERGED = "Diverged"  # the label of a run whose loss or weights became NaN or infinite; not a phase
LABELS = (*PHASES, DIVERGED)  # every label a run can carry


def is_collapsed(weight_norm: float, output_spread: float | None = None,
                 weight_norm_init: float | None = None) -> bool:
    """True when the weights decayed to (about) zero, are collapsing (below ``FORGET_NORM_FRACTION`` of their
    initial norm, when it is given) or the network outputs a constant."""
    if weight_norm < COLLAPSE_NORM:
        return True
    if weight_norm_init is not None and weight_norm < FORGET_NORM_FRACTION * weight_norm_init:
        return True
    return output_spread is not None and output_spread < COLLAPSE_SPREAD


def classify_phase(train_acc: float, test_acc: float, xi: float, collapsed: bool = False,
                   diverged: bool = False) -> str:
    """Return one of :data:`PHASES`, or :data:`DIVERGED` when ``diverged`` (see the module docstring)."""
    if diverged:
        return DIVERGED
    check_range("train_acc", train_acc, 0.0, 1.0, hi_open=False)
    check_range("test_acc", test_acc, 0.0, 1.0, hi_open=False)
    check_range("xi", xi, 0.0, 1.0)
    inversion_line = round(INVERSION_MARGIN - xi, 9)  # 1.05 - 0.35 must be 0.7, not 0.7000000000000001
    if test_acc >= ACC_THRESHOLD:
        if train_acc >= ACC_THRESHOLD:
            return "Coexistence"
        if train_acc >= inversion_line:
            return "Partial Inversion"
        return "Full Inversion"
    if train_acc >= ACC_THRESHOLD:
        return "Memorization"
    return "Forgetting" if collapsed else "Confusion"


def diverged_warning(summaries: Iterable[Mapping[str, Any]]) -> str | None:
    """One stderr line saying how many of these runs (summaries or results.csv rows, each with ``phase`` and, when
    diverged, ``diverged_step``) diverged and from which logged step at the earliest; None when none did."""
    rows = list(summaries)
    bad = [r for r in rows if r.get("phase") == DIVERGED]
    if not bad:
        return None
    steps = [int(float(r["diverged_step"])) for r in bad if r.get("diverged_step") not in (None, "")]
    when = f", first seen at logged step {min(steps)}" if steps else ""
    return (f"{len(bad)} of {len(rows)} runs diverged (loss or weights NaN or infinite{when}), labelled {DIVERGED}: "
            "a smaller --lr or --init-scale keeps them finite")

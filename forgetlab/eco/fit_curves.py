"""Synthetic monotone metric curves for checking strength fitters: how a corruption's metric typically falls.

``exponential`` decays towards chance (0.25) and reaches it only in the limit, ``logistic`` falls steeply around
its midpoint, ``staircase`` is piecewise constant (the accuracy of a handful of multiple-choice items), each at a
``scale`` (the strength where the metric has fallen halfway or taken its first step). Pure functions: tests and
``benchmarks/fit_convergence.py`` use them to count the evaluations a fitter needs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

CHANCE = 0.25
SHAPES = ("exponential", "logistic", "staircase")
TARGETS = {"exponential": CHANCE, "logistic": 0.5, "staircase": CHANCE}
"""What a fit aims at on each shape: chance where the curve reaches it, the midpoint of the logistic fall."""


def curve(shape: str, scale: float) -> Callable[[float], float]:
    """The metric ``m(s)`` of ``shape`` whose fall happens around strength ``scale``."""
    if shape == "exponential":
        return lambda s: CHANCE + (1 - CHANCE) * math.exp(-s / scale)
    if shape == "logistic":
        return lambda s: CHANCE + (1 - CHANCE) / (1 + math.exp(min(50.0, (s - scale) / (0.2 * scale))))
    if shape == "staircase":
        return lambda s: 1.0 - 0.25 * min(3, int(s / scale))
    raise ValueError(f"unknown shape {shape!r}; one of {', '.join(SHAPES)}")

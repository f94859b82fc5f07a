"""How numbers are written in tables, labels and CSV files: one function, a few named styles.

========  ==========================================  ========================
style     a float is written as                       used for
========  ==========================================  ========================
``csv``   ``repr`` (round-trips exactly); None: ""    results.csv of a sweep
``g``     shortest ``:g``                             plot labels (wd=15)
``4g``    four significant digits                     case and claim tables
``3f``    three decimals, ``:.2e`` below 0.01; nan -  unlearning tables
``pct``   percent with two decimals                   accuracies in claims
========  ==========================================  ========================

Anything that is not a float is written with ``str`` (None as "" in ``csv``, "n/a" elsewhere).
"""

from __future__ import annotations

import math
from typing import Any

STYLES = ("csv", "g", "4g", "3f", "pct")


def fmt(value: Any, style: str = "4g") -> str:
    """``value`` written in ``style`` (see the module table)."""
    if value is None:
        return "" if style == "csv" else "n/a"
    if not isinstance(value, float):
        return str(value)
    if style == "csv":
        return repr(value)
    if math.isnan(value):
        return "-" if style == "3f" else "nan"
    if style == "g":
        return f"{value:g}"
    if style == "3f":
        return f"{value:.2e}" if (abs(value) < 1e-2 and value != 0) else f"{value:.3f}"
    if style == "pct":
        return f"{100 * value:.2f}%"
    if style == "4g":
        return f"{value:.4g}"
    raise ValueError(f"unknown style {style!r}; one of {', '.join(STYLES)}")

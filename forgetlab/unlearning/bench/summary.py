"""Mean and spread over seeds: one summary row per (split, method, protocol) from the per-seed rows."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .table import METRICS

SUMMARY_FIELDS = (*METRICS, "classifier_fpr", "classifier_fnr")


def mean_sd(values: list[float]) -> dict[str, Any]:
    """``{"mean", "sd", "n", "values"}`` over the finite values (sample sd, ddof 1; NaN with one value)."""
    v = np.array([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if v.size == 0:
        return {"mean": float("nan"), "sd": float("nan"), "n": 0, "values": list(values)}
    sd = float(v.std(ddof=1)) if v.size > 1 else float("nan")
    return {"mean": float(v.mean()), "sd": sd, "n": int(v.size), "values": list(values)}


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (split, method, protocol) in first-seen order: each field of :data:`SUMMARY_FIELDS` as
    :func:`mean_sd` over the seeds, and the worst seed's forget quality (the smallest)."""
    keys = list(dict.fromkeys((r["split"], r["method"], r["protocol"]) for r in rows))
    out = []
    for split, method, protocol in keys:
        group = [r for r in rows if (r["split"], r["method"], r["protocol"]) == (split, method, protocol)]
        s: dict[str, Any] = {"split": split, "method": method, "protocol": protocol,
                             "seeds": [r.get("seed", 0) for r in group]}
        for f in SUMMARY_FIELDS:
            s[f] = mean_sd([r.get(f, float("nan")) for r in group])
        s["worst_seed_forget_quality"] = min(group, key=lambda r: r["forget_quality"]).get("seed", 0)
        out.append(s)
    return out

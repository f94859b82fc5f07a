"""One multi-seed ``results.json`` from bench runs of other seeds (separate processes or machines).

A default-scale seed takes most of an hour; ``forgetlab eco bench --seeds 1`` and ``--seeds 2`` can run side by
side (one torch thread each) and ``forgetlab eco bench-merge`` joins them into the record that ``--seeds 0,1,2``
would have written: rows of every seed, the summary over seeds, each seed's config part, training and timings.
Runs of different settings (scale, answers, methods, splits, flag rule, tuning) cannot be merged.
"""

from __future__ import annotations

from typing import Any

from ...errors import BadInput
from .summary import summarize

SAME_SETTINGS = ("scale", "answers", "methods", "splits", "flag_entities", "entity_level", "tune", "tuned_epochs",
                 "world", "lm", "train", "eco_candidates", "mc_chance")
"""Config fields every merged run must share (a seed's own world and models differ only through the seed)."""

_SEED_PART = ("world", "train")  # carry the seed itself: compared with it left out


def _settings(rec: dict[str, Any]) -> dict[str, Any]:
    """The config fields that must agree between merged runs, with the per-seed seed fields taken out."""
    c = rec["config"]
    out = {k: c.get(k) for k in SAME_SETTINGS}
    for k in _SEED_PART:
        if isinstance(out[k], dict):
            out[k] = {f: v for f, v in out[k].items() if f != "seed"}
    return out


def _check(records: list[dict[str, Any]], names: list[str]) -> None:
    """Distinct seeds and equal settings, or a one-line error naming the run and the field that differs."""
    seen: dict[int, str] = {}
    first = _settings(records[0])
    for rec, name in zip(records, names, strict=True):
        for k in rec["config"].get("seeds", [0]):
            if k in seen:
                raise BadInput("results", name, f"runs of distinct seeds (seed {k} is also in {seen[k]})")
            seen[k] = name
        for field, value in _settings(rec).items():
            if value != first[field]:
                raise BadInput("results", name, f"runs with the same {field} as {names[0]} "
                                                f"({value!r} != {first[field]!r})")


def _prefixed(guards: dict[str, Any], seeds: list[int]) -> dict[str, Any]:
    """A run's guard paths keyed ``seed<k>/<split>/<protocol>`` (a one-seed run keys them without the seed)."""
    if len(seeds) > 1:
        return dict(guards)
    return {f"seed{seeds[0]}/{g}": p for g, p in guards.items()}


def merge_results(records: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """The merged record of ``records`` (loaded ``results.json`` files, named by ``names`` in errors).

    Seeds keep the order given; the machine block is the first run's with every run's machine under ``runs``;
    ``timings.total`` is the longest run's (the runs may have overlapped), each run's under ``seed<k>/...``."""
    if len(records) < 2:
        raise BadInput("results", ",".join(names), "two or more results.json files of `forgetlab eco bench`")
    _check(records, names)
    seeds = [k for rec in records for k in rec["config"].get("seeds", [0])]
    config = {**records[0]["config"], "seeds": seeds, "seeds_requested": seeds,
              "per_seed": {k: v for rec in records for k, v in rec["config"].get("per_seed", {}).items()},
              "heldout_check": {k: v for rec in records for k, v in rec["config"].get("heldout_check", {}).items()},
              "guards": {g: p for rec in records
                         for g, p in _prefixed(rec["config"].get("guards", {}), rec["config"].get("seeds", [0])).items()},
              "merged_from": names}
    rows = [r for rec in records for r in rec["rows"]]
    timings = {k: v for rec in records for k, v in rec["timings"].items() if k.startswith("seed")}
    runs = [{"results": n, "seeds": rec["config"].get("seeds", [0]), **rec.get("machine", {}),
             "total_seconds": rec["timings"].get("total")} for rec, n in zip(records, names, strict=True)]
    return {**{k: v for k, v in records[0].items() if k not in ("config", "rows", "summary", "mc_rows", "timings",
                                                                "training", "machine")},
            "config": config, "seeds": seeds, "rows": rows, "summary": summarize(rows),
            "mc_rows": [r for rec in records for r in rec.get("mc_rows", [])],
            "timings": {"total": max(rec["timings"].get("total", 0.0) for rec in records), **timings},
            "training": {k: v for rec in records for k, v in rec.get("training", {}).items()},
            "machine": {**records[0].get("machine", {}), "runs": runs}}

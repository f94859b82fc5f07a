"""Which items of the world each step of the bench may see: disjoint author groups per role."""

from __future__ import annotations

from ..world import World
from .scale import Scale


def eval_and_fit_splits(world: World, s: Scale) -> tuple[list[dict], list[dict], list[dict], list[dict]]:
    """(retain_eval, fit_items, holdout_fit, holdout_eval): disjoint author groups for utility, ECO's corruption
    fit (trained authors outside every forget split), the fit's surrogate target (holdout authors) and MIA."""
    ret = world.retain_authors()
    eval_items, fit_names = [], []
    for n in ret:
        if len(eval_items) < s.retain_eval_max:
            eval_items += world.authors[n]
        else:
            fit_names.append(n)
    fit_items = world.items(fit_names[-max(2, len(fit_names) // 3):]) if fit_names else world.items(ret[-2:])
    h = world.holdout
    half = max(1, len(h) // 2)
    return eval_items[: s.retain_eval_max], fit_items, world.items(h[:half]), world.items(h[half:])


def retain_fit_items(world: World, retain_eval: list[dict]) -> list[dict]:
    """Items of the retain authors none of whose items is a utility item: what fit steps may use as retain data
    (flag-rule negatives, a baseline's retain set), so no utility author is seen by a fit step."""
    scored = {r["entity"] for r in retain_eval}
    return world.items([n for n in world.retain_authors() if n not in scored])

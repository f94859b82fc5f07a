"""Held-out discipline of the bench, enforced before any fitting: no fit step sees an item the bench scores.

Every fit step declares the items it trains, calibrates or fits on (the flag rule's negatives and calibration
prompts, the corruption's fit set and its holdout surrogate, a baseline's retain set); every scored set is named
(the forget split, the three utility sets, the MIA holdout). :func:`check_heldout` refuses the run with a one-line
error if a fit set shares a question text with a scored set, or, for entity targets, an entity (author, painter,
country). The forget split is the unlearning request itself: it is the flag rule's positives and a baseline's
forget set by definition (TOFU, ECO), so it is checked only against the utility and holdout sets, never
against itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ...eco.fit import check_disjoint
from ...errors import BadInput

Items = Sequence[dict[str, Any]]
FORGET_REQUEST = "forget request"  # the forget split as the fit steps' positives / forget set
FORGET_EVAL = "forget evaluation"


def _keys(items: Items, key: str) -> list[str]:
    """The non-empty values of ``key`` in ``items`` (question texts, entity names)."""
    return [str(r[key]) for r in items if r.get(key)]


def check_pair(fit_name: str, fit: Items, scored_name: str, scored: Items, by_entity: bool) -> None:
    """Raise :class:`BadInput` naming both sets and an example if ``fit`` shares a question (or, with
    ``by_entity``, an entity) with ``scored`` (:func:`~forgetlab.eco.fit.check_disjoint` on each key)."""
    for key in ("question", "entity") if by_entity else ("question",):
        a, b = _keys(fit, key), _keys(scored, key)
        try:
            check_disjoint(a, b)
        except BadInput:
            shared = sorted(set(a) & set(b))
            raise BadInput("held-out items", f"{len(shared)} {key}(s) of the {fit_name} are among the "
                           f"{scored_name} items (e.g. {shared[0]!r})",
                           "fit steps that see no forget-evaluation, utility or MIA-holdout item") from None


def check_heldout(fit_sets: Mapping[str, Items], scored_sets: Mapping[str, Items], *,
                  by_entity: bool = True) -> dict[str, Any]:
    """Check every fit set against every scored set (the forget request only against sets other than the forget
    evaluation); returns a record of what was checked (set names and sizes) for ``results.json``."""
    for fname, fit in fit_sets.items():
        for sname, scored in scored_sets.items():
            if fname == FORGET_REQUEST and sname == FORGET_EVAL:
                continue
            check_pair(fname, fit, sname, scored, by_entity)
    return {"by": ["question", "entity"] if by_entity else ["question"],
            "fit_sets": {k: len(v) for k, v in fit_sets.items()},
            "scored_sets": {k: len(v) for k, v in scored_sets.items()}}

"""The extra sets an entity target's flag rule is fitted with, built one way for ``eco fit``, the unlearning bench
and the evasion benchmark: unseen-entity negatives for the classifier and indirect references for the matcher.

Without the negatives a classifier learns "a question about an author" and flags new people; without the
references a question that avoids the name ("Who wrote Silent Harbor?") passes the matcher (issue 13).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .config import ClassifierConfig
from .entities import mine_references
from .negatives import rewrites_per_prompt, unseen_entity_negatives


@dataclass
class EntitySets:
    """``negatives``: named prompt sets the classifier must not flag (``unseen_entity``: the forget prompts with
    the names swapped for people who are not forget entities); ``references``: titles and rare phrases of the
    forget texts that the matcher flags like a name."""

    negatives: dict[str, list[str]] = field(default_factory=dict)
    references: list[str] = field(default_factory=list)


def entity_sets(forget_prompts: Sequence[str], retain_prompts: Sequence[str], entities: Sequence[str], *,
                forget_texts: Sequence[str] = (), retain_texts: Sequence[str] = (), seed: int = 0,
                fpr: float = ClassifierConfig.fpr, unseen: bool = True) -> EntitySets:
    """The unseen-entity rewrites (enough per prompt to calibrate their own threshold at ``fpr``; none equal to a
    retain prompt) and the references mined from the forget prompts and ``forget_texts`` (answers) that no retain
    prompt or ``retain_texts`` contains. No entities: nothing to add."""
    if not entities:
        return EntitySets()
    retain_set = set(retain_prompts)
    out = EntitySets()
    if unseen:
        cfg = ClassifierConfig(fpr=fpr)
        per = rewrites_per_prompt(len(forget_prompts), fpr, cfg.heldout_fraction, cfg.test_share)
        swapped = unseen_entity_negatives(forget_prompts, entities, retain_prompts, np.random.default_rng(seed),
                                          per_prompt=per)
        out.negatives["unseen_entity"] = [p for p in swapped if p not in retain_set]
    out.references = mine_references([*forget_prompts, *forget_texts], [*retain_prompts, *retain_texts], entities)
    return out


def without_names(prompts: Sequence[str], names: Sequence[str] | set[str]) -> list[str]:
    """The prompts that mention none of ``names`` (case-insensitive): a benchmark drops the rewrites whose
    swapped-in name is a person it scores, so no fit trains on an evaluation entity."""
    low = [n.lower() for n in names]
    return [p for p in prompts if not any(n in p.lower() for n in low)]

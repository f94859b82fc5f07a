"""A guard's flag rule: the prompt classifier's flag OR a forget-entity mention (when ``flag_entities``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import BadInput
from .token import entity_flags


@dataclass
class FlagRule:
    """A guard's flag decision, usable without its base model: the prompt classifier's flag, OR a forget-entity
    mention when ``flag_entities`` (the classifier learns what forget prompts look like; the matcher knows
    whom they are about)."""

    classifier: Any
    token_classifier: Any = None
    flag_entities: bool = False

    def __post_init__(self) -> None:
        if self.flag_entities and self.token_classifier is None:
            raise BadInput("flag_entities", True, "false, or a guard with a token classifier to match names")

    def name_matches(self, prompts: Sequence[str]) -> np.ndarray:
        """``bool [B]``: which prompts name a forget entity (all False without ``flag_entities``)."""
        if not self.flag_entities:
            return np.zeros(len(prompts), dtype=bool)
        return entity_flags(self.token_classifier, prompts)

    def flag(self, prompts: str | Sequence[str]) -> np.ndarray:
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        flags = np.asarray(self.classifier.flag(prompts), dtype=bool).reshape(len(prompts))
        return flags | self.name_matches(prompts)

    def parts(self, prompts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(classifier flags, classifier scores, name matches) ``[B]`` each, the classifier run once; the rule's
        flags are ``classifier flags | name matches`` (= :meth:`flag` for a ``score > threshold`` classifier)."""
        prompts = list(prompts)
        scores = np.asarray(self.classifier.score(prompts), dtype=float).reshape(len(prompts))
        threshold = getattr(self.classifier, "threshold", None)
        own = scores > threshold if threshold is not None else self.classifier.flag(prompts)
        return np.asarray(own, dtype=bool), scores, self.name_matches(prompts)


MAX_MISS = 0.05
"""Held-out miss rate above which a fitted flag rule is called weak (``eco fit`` warns)."""


def rule_report(rule: FlagRule, heldout: dict[str, list[str]], fpr: float) -> dict[str, Any]:
    """The whole rule's rates on a fit's held-out test prompts (``PromptClassifier.heldout``): the miss rate on
    ``forget`` and the FPR on every other set, each beside the classifier's alone, and the ``warnings`` of a
    weak rule (miss rate above :data:`MAX_MISS`; an FPR above the requested ``fpr`` by more than chance: the
    binomial probability of that many false positives at ``fpr`` under 5%, so 1 of 30 at 1% is no warning)."""
    from scipy.stats import binom

    out: dict[str, Any] = {"sets": {}, "warnings": []}
    for name, prompts in heldout.items():
        if not prompts:
            continue
        own, _scores, names = rule.parts(prompts)
        if name == "forget":
            miss = float(np.mean(~(own | names)))
            out["miss_rate"] = {"n": len(prompts), "rule": miss, "classifier": float(np.mean(~own))}
            if miss > MAX_MISS:
                out["warnings"].append(f"the flag rule misses {miss:.1%} of {len(prompts)} held-out forget "
                                       f"prompts (more than {MAX_MISS:.0%})")
            continue
        rate = float(np.mean(own | names))
        row = {"n": len(prompts), "rule": rate, "classifier": float(np.mean(own))}
        out["sets"][name] = row
        fp = round(rate * len(prompts))
        row["p_value"] = float(binom.sf(fp - 1, len(prompts), fpr))
        if rate > fpr and row["p_value"] < 0.05:
            out["warnings"].append(f"the flag rule flags {rate:.1%} of {len(prompts)} held-out {name} prompts "
                                   f"(requested FPR {fpr:g}; p = {row['p_value']:.2g})")
    if "miss_rate" not in out:  # too few forget prompts to hold any out
        out["warnings"].append("no held-out forget prompts: the flag rule's miss rate is not measured (give more "
                               "forget prompts)")
    return out

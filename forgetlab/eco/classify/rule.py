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

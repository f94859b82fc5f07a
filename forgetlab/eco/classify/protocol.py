"""What a guard needs from a prompt classifier: the typed contract that :class:`PromptClassifier` and any
stand-in (a keyword matcher in tests, a user's own model) satisfy."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Classifier(Protocol):
    """Scores prompts (higher = about the forget target) and flags those above ``threshold``.

    ``score(prompts) -> float [B]``; ``flag(prompts) -> bool [B]`` is ``score > threshold``;
    ``save_pretrained(folder)`` / ``from_pretrained(folder)`` round-trip it (safetensors and JSON only);
    ``report`` holds what fitting measured (FPR, FNR), or {}.
    """

    threshold: float
    report: dict[str, Any]

    def score(self, prompts: Sequence[str]) -> np.ndarray: ...

    def flag(self, prompts: Sequence[str]) -> np.ndarray: ...

    def save_pretrained(self, path: str | Path, overwrite: bool = False) -> Path: ...

    @classmethod
    def from_pretrained(cls, path: str | Path) -> Classifier: ...

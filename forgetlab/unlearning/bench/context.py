"""What every step of the bench shares: the scale, the world, the target model, the item splits, timings."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...eco.corrupter import Corrupter, GuardConfig
from ...eco.select import Surrogate
from ..evaluate import Evaluation, evaluate_model, qa_scores
from ..metrics import truth_ratio
from ..scoring import Corruption
from ..world import World
from .models import Models
from .scale import Scale


@dataclass
class BenchContext:
    """The shared state of one bench run (read by the steps; ``timings`` and ``target_utility`` written)."""

    scale: Scale
    world: World
    models: Models
    target: Any  # the target model (eval mode)
    tokenizer: Any
    retain_eval: list[dict[str, Any]]  # utility items (retain authors no fit step sees)
    retain_fit: list[dict[str, Any]]  # the other retain authors' items: fit steps' retain data
    fit_items: list[dict[str, Any]]  # ECO's corruption fit set (trained authors outside every forget split)
    holdout_fit: list[dict[str, Any]]  # never-seen authors: the fit's surrogate target
    holdout_eval: list[dict[str, Any]]  # never-seen authors: MIA non-members
    answers: str
    seed: int
    entity_level: bool
    flag_entities: bool
    say: Callable[[str, int, int], None]
    progress: Callable[[str, int, int], None] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    target_utility: dict[str, float] | None = None
    guards_dir: Path | None = None  # where ECO's fitted guards are saved (None: not saved)
    _holdout: Surrogate | None = None

    def holdout_surrogate(self) -> Surrogate:
        """Per-item answer probabilities and truth ratios ``[M]`` of the target on the never-seen holdout authors
        (``holdout_fit``): the surrogate target of ECO's corruption fit and of the baselines' tuning, computed
        once per run."""
        if self._holdout is None:
            hs = qa_scores(self.target, self.tokenizer, self.holdout_fit)
            self._holdout = Surrogate(np.exp(hs["answer"]), truth_ratio(hs["para"], hs["pert"]))
        return self._holdout

    @property
    def hidden(self) -> int:
        """Hidden size of the target model (ECO corrupts every dim)."""
        return int(self.target.config.hidden_size)

    def evaluate(self, model: Any, data: Any, **kw: Any) -> Evaluation:
        """All TOFU/MUSE numbers of ``model`` on ``data`` at this scale's generation length."""
        return evaluate_model(model, self.tokenizer, data, max_new_tokens=self.scale.max_new_tokens, **kw)

    def corruption(self, name: str, strength: float, flags: Any, protocol: str = "deployment",
                   token_classifier: Any = None) -> Corruption:
        """ECO's corruption ``name`` at ``strength`` on every hidden dim, built as a guard builds it (entity
        tokens only when ``entity_level`` and a token classifier is given), for items with ``flags``."""
        config = GuardConfig(name, float(strength), self.hidden, self.seed, entity_tokens=self.entity_level)
        tc = token_classifier if self.entity_level else None
        return Corruption(Corrupter(self.tokenizer, config, tc), flags, protocol, answer_entities=token_classifier)

    @contextmanager
    def timed(self, key: str) -> Iterator[None]:
        """Record the wall time of the block under ``key``."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[key] = time.perf_counter() - t0

"""The bench's models: a tokenizer, the target model, one retain model per forget split and (optionally) a second
retain model per split trained with another seed, each trained once and cached by content hash."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..lm import cached_lm, cached_tokenizer
from ..world import World
from .reference import RESEED_OFFSET
from .scale import Scale

Progress = Callable[[str, int, int], None]  # (task, done, total)


@dataclass
class Models:
    """Folders of the tokenizer, the target model, one retain model per split and the reseeded retain models
    (``retain_reseeded``: empty unless asked for), with training records."""

    tokenizer: Path
    target: Path
    retain: dict[str, Path]
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    retain_reseeded: dict[str, Path] = field(default_factory=dict)


def build_models(world: World, s: Scale, cache_dir: str | os.PathLike | None = None,
                 progress: Progress | None = None, reseeded: bool = False) -> Models:
    """Train (or load from the cache) the target model and the retain model of every split in ``s``; with
    ``reseeded`` also a second retain model per split, trained with the seed plus :data:`RESEED_OFFSET`."""
    tok_dir = cached_tokenizer(world.all_text(), s.lm.vocab_size, cache_dir)
    other = replace(s.train, seed=s.train.seed + RESEED_OFFSET)
    jobs = [("target", None, s.train)] + [(f"retain-{sp}", sp, s.train) for sp in s.splits]
    jobs += [(f"retain-{sp}-reseed", sp, other) for sp in s.splits] if reseeded else []
    paths: dict[str, Path] = {}
    records: dict[str, dict[str, Any]] = {}
    for name, split, train in jobs:
        cb = (lambda i, n, _loss, name=name: progress(f"train {name}", i, n)) if progress else None
        t0 = time.perf_counter()
        path, rec = cached_lm(name, world.training_items(split), tok_dir, s.lm, train, cache_dir, cb)
        rec = dict(rec, load_or_train_seconds=time.perf_counter() - t0)
        paths[name], records[name] = path, rec
    return Models(tok_dir, paths["target"], {sp: paths[f"retain-{sp}"] for sp in s.splits}, records,
                  {sp: paths[f"retain-{sp}-reseed"] for sp in s.splits if f"retain-{sp}-reseed" in paths})

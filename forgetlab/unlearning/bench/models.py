"""The bench's models: a tokenizer, the target model and one retain model per forget split, trained once and
cached by content hash."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..lm import cached_lm, cached_tokenizer
from ..world import World
from .scale import Scale

Progress = Callable[[str, int, int], None]  # (task, done, total)


@dataclass
class Models:
    """Folders of the tokenizer, the target model and one retain model per split, with training records."""

    tokenizer: Path
    target: Path
    retain: dict[str, Path]
    records: dict[str, dict[str, Any]] = field(default_factory=dict)


def build_models(world: World, s: Scale, cache_dir: str | os.PathLike | None = None,
                 progress: Progress | None = None) -> Models:
    """Train (or load from the cache) the target model and the retain model of every split in ``s``."""
    tok_dir = cached_tokenizer(world.all_text(), s.lm.vocab_size, cache_dir)
    jobs = [("target", None)] + [(f"retain-{sp}", sp) for sp in s.splits]
    paths: dict[str, Path] = {}
    records: dict[str, dict[str, Any]] = {}
    for name, split in jobs:
        cb = (lambda i, n, _loss, name=name: progress(f"train {name}", i, n)) if progress else None
        t0 = time.perf_counter()
        path, rec = cached_lm(name, world.training_items(split), tok_dir, s.lm, s.train, cache_dir, cb)
        rec = dict(rec, load_or_train_seconds=time.perf_counter() - t0)
        paths[name], records[name] = path, rec
    return Models(tok_dir, paths["target"], {sp: paths[f"retain-{sp}"] for sp in s.splits}, records)

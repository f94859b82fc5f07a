"""What a stage of ``forgetlab reproduce`` is and returns: claims with bands, figures, every number.

Each stage returns a :class:`StageResult`; the report is rendered only from those results: no number in it is
typed in by hand, except the authors' numbers, each cited with its source.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..registry import Registry

SCALES = ("small", "paper", "smoke")
"""``small``: a laptop, <= 20 min on 2 cores; ``paper``: the papers' sizes; ``smoke``: tiny sizes that run every
stage in about a minute (tests of the pipeline: its bands are not meant to pass)."""
PAPERS = {
    "grok": "To grok or not to grok: disentangling generalization and memorization on corrupted algorithmic "
    "datasets (Doshi, Das, He, Gromov, ICLR 2024, arXiv 2310.13061)",
    "eco": "Large language model unlearning via embedding-corrupted prompts (Liu, Yao, Li, Liu, NeurIPS 2024, "
    "arXiv 2406.07933)",
}


@dataclass
class Claim:
    """One checked statement: the authors' number (with its source), ours, the band ours must fall in."""

    paper: str
    case: str
    quantity: str
    authors: str
    source: str
    ours: str
    band: str
    passed: bool
    miss: str = ""  # by how much a failed claim misses its band, in words


@dataclass
class Figure:
    """A PNG written by a stage, as a path relative to the report folder, with its caption."""

    path: str
    caption: str


@dataclass
class StageResult:
    """What a stage measured: claims, figures, all numbers, its wall time and the commands to redo it."""

    name: str
    title: str
    paper: str
    claims: list[Claim] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    commands: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    cached: bool = False
    not_run: str = ""  # why the stage did not run at this scale (its commands say how to run it); "" = it ran

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StageResult:
        data = dict(data)
        data["claims"] = [Claim(**c) for c in data.get("claims", [])]
        data["figures"] = [Figure(**f) for f in data.get("figures", [])]
        return cls(**data)


# A stage runner gets (its own folder, the scale's name, a progress callback taking a fraction in [0, 1]).
StageRunner = Callable[[Path, str, Callable[[float], None]], StageResult]


@dataclass(frozen=True)
class Stage:
    """A named part of the job with an estimate of its wall time on 2 CPU cores (for the ETA)."""

    name: str
    paper: str
    title: str
    estimate_seconds: dict[str, float]
    run: StageRunner


STAGES: Registry[Stage] = Registry("stage", {
    "grok_cases": "forgetlab.reproduce.stages.grok:GROK_CASES",
    "grok_arch": "forgetlab.reproduce.stages.grok_arch:GROK_ARCH",
    "grok_phases": "forgetlab.reproduce.stages.grok_phases:GROK_PHASES",
    "eco_bench": "forgetlab.reproduce.stages.eco:ECO_BENCH",
})
"""The stages of the job, in run order (lazy: a stage's code is imported when it runs)."""


def figure_path(path: str | os.PathLike, folder: Path) -> str:
    """A figure path relative to the stage folder (the report prefixes the stage's own path)."""
    return str(Path(path).resolve().relative_to(folder.resolve()))

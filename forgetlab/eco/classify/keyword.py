"""A deny-list classifier: flags a prompt when it contains one of a few keywords (case-insensitive).

Exact and auditable where a list of names or terms is the whole forget target, and an exact stand-in for the
MiniLM classifier in tests and benchmarks (same score/flag/threshold/report/save/load contract).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...errors import ForgetlabError
from ...runs import atomic_write_json, prepare_out_dir, read_record

FORMAT = "forgetlab.eco.KeywordClassifier"
FORMAT_VERSION = 1


class KeywordClassifier:
    """Scores 1.0 when a prompt contains one of ``keywords`` (case-insensitive), else 0.0."""

    def __init__(self, keywords: Sequence[str], threshold: float = 0.5) -> None:
        self.keywords = [k.lower() for k in keywords]
        self.threshold = threshold
        self.report = {"kind": "keyword deny-list"}

    def score(self, prompts: str | Sequence[str]) -> np.ndarray:
        """``[B]`` 1.0 or 0.0 per prompt."""
        prompts = [prompts] if isinstance(prompts, str) else prompts
        return np.array([float(any(k in p.lower() for k in self.keywords)) for p in prompts])

    def flag(self, prompts: str | Sequence[str]) -> np.ndarray:
        """``score > threshold`` as bool ``[B]``."""
        return self.score(prompts) > self.threshold

    def save_pretrained(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write ``keywords.json``."""
        path = prepare_out_dir(path, overwrite=overwrite, field="path")
        atomic_write_json(path / "keywords.json", {"format": FORMAT, "format_version": FORMAT_VERSION,
                                                   "keywords": self.keywords, "threshold": self.threshold})
        return path

    @classmethod
    def from_pretrained(cls, path: str | Path) -> KeywordClassifier:
        """Load a folder written by :meth:`save_pretrained`."""
        meta = read_record(path, "keywords.json", FORMAT, FORMAT_VERSION)
        try:
            return cls([str(k) for k in meta["keywords"]], float(meta["threshold"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ForgetlabError(f"{Path(path) / 'keywords.json'}: broken record ({exc})") from None

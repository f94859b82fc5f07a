"""A keyword stand-in for the MiniLM prompt classifier (same score/flag/threshold/report/save/load contract), so
guard and serving tests get exact flags. Importing this module registers it for guard folders as "keyword"."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from forgetlab.eco.guard import register_classifier_type
from forgetlab.runs import atomic_write_json, prepare_out_dir


class KeywordClassifier:
    """Flags a prompt when it contains one of ``keywords`` (case-insensitive)."""

    def __init__(self, keywords: Sequence[str], threshold: float = 0.5) -> None:
        self.keywords = [k.lower() for k in keywords]
        self.threshold = threshold
        self.report = {"kind": "keyword stand-in for the MiniLM classifier"}

    def score(self, prompts):
        prompts = [prompts] if isinstance(prompts, str) else prompts
        return np.array([float(any(k in p.lower() for k in self.keywords)) for p in prompts])

    def flag(self, prompts):
        return self.score(prompts) > self.threshold

    def save_pretrained(self, path, overwrite=False):
        path = prepare_out_dir(path, overwrite=overwrite)
        atomic_write_json(path / "keywords.json", {"keywords": self.keywords, "threshold": self.threshold})
        return path

    @classmethod
    def from_pretrained(cls, path):
        obj = json.loads((Path(path) / "keywords.json").read_text())
        return cls(obj["keywords"], obj["threshold"])


register_classifier_type("keyword", KeywordClassifier)

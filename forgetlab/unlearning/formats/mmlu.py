"""MMLU (Hendrycks et al. 2021) in its two published layouts, multiple choice by subject.

- The original release (``data.tar``): ``test/<subject>_test.csv``, ``dev/<subject>_dev.csv`` (the five
  few-shot examples) and ``val/<subject>_val.csv``, header-less CSV rows ``question, A, B, C, D, answer letter``;
  the folder may be ``data/`` itself or hold it.
- The hub export (``cais/mmlu``): ``<subject>/test-*.parquet`` (or ``test.jsonl`` / ``test.json``) with rows
  ``{"question", "subject", "choices", "answer": index}``, and ``<subject>/dev-*.parquet`` for few-shot.

Items are :class:`~forgetlab.eco.mc.MCItem` (answer index, letter or text). :func:`write_mmlu` writes the
synthetic world's subjects in the original CSV layout.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from ...eco.mc import LETTERS, MCItem
from ...errors import BadInput, ForgetlabError
from ...runs import atomic_write_text
from .files import Expected, check_folder, find, layout_error, read_csv_rows
from .wmdp import mc_items

EXPECTED = [Expected("original release", ("test/<subject>_test.csv",), ("question", "A", "B", "C", "D", "answer")),
            Expected("hub export", ("<subject>/test-*.parquet", "<subject>/test.jsonl"),
                     ("question", "choices", "answer"))]


@dataclass
class MMLUData:
    """Test items and few-shot (dev) items by subject."""

    test: dict[str, list[MCItem]]
    dev: dict[str, list[MCItem]] = field(default_factory=dict)


def _csv_items(path: Path, subject: str) -> list[MCItem]:
    rows = read_csv_rows(path, 6)
    if not rows:
        raise ForgetlabError(f"{path}: no items (empty file)")
    out = []
    for i, r in enumerate(rows, start=1):
        try:
            out.append(MCItem.from_dict({"question": r[0], "choices": r[1:5], "answer": r[5]},
                                        where=f"{path}: row {i}", subject=subject))
        except BadInput as exc:
            raise ForgetlabError(str(exc)) from None
    return out


def _load_csv(root: Path, subjects: tuple[str, ...]) -> MMLUData:
    names = list(subjects) or sorted(p.name[:-len("_test.csv")] for p in (root / "test").glob("*_test.csv"))
    data = MMLUData({})
    for s in names:
        path = root / "test" / f"{s}_test.csv"
        if not path.is_file():
            raise ForgetlabError(f"{root}: no test/{s}_test.csv (MMLU's original layout: test/<subject>_test.csv)")
        data.test[s] = _csv_items(path, s)
        dev = root / "dev" / f"{s}_dev.csv"
        if dev.is_file():
            data.dev[s] = _csv_items(dev, s)
    return data


def _load_hub(root: Path, subjects: tuple[str, ...]) -> MMLUData:
    pats = ("{s}/test-*.parquet", "{s}/test.jsonl", "{s}/test.json")
    names = list(subjects) or sorted(p.name for p in root.iterdir()
                                     if p.is_dir() and find(root, [x.format(s=p.name) for x in pats]))
    data = MMLUData({})
    for s in names:
        path = find(root, [x.format(s=s) for x in pats])
        if path is None:
            raise layout_error(root, "MMLU", EXPECTED)
        data.test[s] = mc_items(path, s)
        dev = find(root, [x.format(s=s).replace("test", "dev") for x in pats])
        if dev is not None:
            data.dev[s] = mc_items(dev, s)
    return data


def load_mmlu(folder: str | Path, subjects: tuple[str, ...] = ()) -> MMLUData:
    """The MMLU folder's test (and dev) items by subject, every subject or only ``subjects``."""
    folder = check_folder(folder, "MMLU")
    for root in (folder, folder / "data"):
        if (root / "test").is_dir() and any((root / "test").glob("*_test.csv")):
            return _load_csv(root, subjects)
    data = _load_hub(folder, subjects)
    if not data.test:
        raise layout_error(folder, "MMLU", EXPECTED)
    return data


def write_mmlu(world, out: str | Path, n_dev: int = 2) -> list[Path]:
    """Write the world's subjects in MMLU's original layout (the first ``n_dev`` items of each as ``dev``)."""
    out = Path(out)
    paths = []
    for subject, rows in world.mc.items():
        for split, part in (("dev", rows[:n_dev]), ("test", rows[n_dev:])):
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            for r in part:
                w.writerow([r["question"], *r["choices"], LETTERS[r["label"]]])
            p = out / split / f"{subject}_{split}.csv"
            atomic_write_text(p, buf.getvalue())
            paths.append(p)
    return paths

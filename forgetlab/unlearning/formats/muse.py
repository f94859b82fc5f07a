"""MUSE (Shi et al. 2024) as published (the ``muse_bench`` repository's ``data/<corpus>/`` folders and the
``muse-bench/MUSE-News`` / ``MUSE-Books`` hub configs): file names and schemas, a loader and a writer.

| subset      | files (first found)                                      | rows                                  |
|-------------|----------------------------------------------------------|---------------------------------------|
| ``verbmem`` | ``verbmem/forget.json``                                  | prompt, gt (the verbatim continuation)|
| ``knowmem`` | ``knowmem/forget_qa.json``, ``knowmem/retain_qa.json`` (or ``retain2_qa.json``), their ``*_icl.json`` few-shot examples | question, answer |
| ``privleak``| ``privleak/forget.json``, ``privleak/holdout.json``, ``privleak/retain.json`` (or ``retain2.json``) | text (a JSON array of strings is read as texts) |
| ``raw``     | ``raw/forget``, ``raw/retain1``, ``raw/retain2``, ``raw/holdout`` as ``.txt`` (one corpus) or ``.json`` | text |

Every file may also be JSON lines (``.jsonl``) or Parquet (``.parquet``, a hub export). Each subset is optional,
but a folder must hold at least one of verbmem, knowmem and privleak. :func:`write_muse` writes the synthetic
world in this layout (author biographies as the corpus).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import ForgetlabError
from ...runs import atomic_write_text
from .files import (
    Expected,
    check_folder,
    check_rows,
    check_strings,
    find,
    layout_error,
    read_records,
    read_text,
)

SUFFIXES = (".json", ".jsonl", ".parquet")
EXPECTED = [Expected("verbatim memorization", ("verbmem/forget.json",), ("prompt", "gt")),
            Expected("knowledge memorization", ("knowmem/forget_qa.json", "knowmem/retain_qa.json"),
                     ("question", "answer")),
            Expected("privacy leakage", ("privleak/forget.json", "privleak/holdout.json"), ("text",))]
RAW_SPLITS = ("forget", "retain1", "retain2", "holdout")


@dataclass
class MuseData:
    """The MUSE subsets a folder holds (empty when absent): verbatim prompts/continuations, knowledge QA with
    their few-shot examples, privacy-leakage texts, and the raw corpora (documents)."""

    verbmem: list[dict[str, str]] = field(default_factory=list)
    knowmem: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # forget_qa, retain_qa (+ _icl)
    privleak: dict[str, list[str]] = field(default_factory=dict)  # forget, holdout, retain
    raw: dict[str, list[str]] = field(default_factory=dict)  # forget, retain1, retain2, holdout


def _file(folder: Path, stems: tuple[str, ...]) -> Path | None:
    return find(folder, [s + suf for s in stems for suf in SUFFIXES])


def _rows(path: Path, fields: tuple[str, ...]) -> list[dict[str, Any]]:
    rows = check_rows(read_records(path), path, fields)
    for f in fields:
        check_strings(rows, path, f)
    return rows


def _load_knowmem(folder: Path) -> dict[str, list[dict[str, str]]]:
    out = {}
    for key, stems in (("forget_qa", ("forget_qa",)), ("retain_qa", ("retain_qa", "retain2_qa"))):
        for suffix in ("", "_icl"):
            path = _file(folder / "knowmem", tuple(s + suffix for s in stems))
            if path is not None:
                out[key + suffix] = _rows(path, ("question", "answer"))
    return out


def _load_texts(folder: Path, names: dict[str, tuple[str, ...]]) -> dict[str, list[str]]:
    out = {}
    for key, stems in names.items():
        path = _file(folder, stems)
        if path is None and any((folder / f"{s}.txt").is_file() for s in stems):
            path = next(folder / f"{s}.txt" for s in stems if (folder / f"{s}.txt").is_file())
        if path is None:
            continue
        if path.suffix == ".txt":
            out[key] = [read_text(path)]
        else:
            out[key] = [r["text"] for r in _rows(path, ("text",))]
    return out


def load_muse(folder: str | Path) -> MuseData:
    """The MUSE subsets in ``folder`` (a corpus folder such as ``data/news``); a folder with none of verbmem,
    knowmem and privleak is a one-line error listing the files and fields MUSE's layout has."""
    folder = check_folder(folder, "MUSE")
    verb = _file(folder / "verbmem", ("forget",))
    data = MuseData(verbmem=_rows(verb, ("prompt", "gt")) if verb is not None else [],
                    knowmem=_load_knowmem(folder),
                    privleak=_load_texts(folder / "privleak", {"forget": ("forget",), "holdout": ("holdout",),
                                                                "retain": ("retain", "retain2")}),
                    raw=_load_texts(folder / "raw", {s: (s,) for s in RAW_SPLITS}))
    if not (data.verbmem or data.knowmem or data.privleak):
        raise layout_error(folder, "MUSE", EXPECTED)
    if data.privleak and not {"forget", "holdout"} <= set(data.privleak):
        raise ForgetlabError(f"{folder / 'privleak'}: needs both forget.json and holdout.json (text) for the "
                             f"membership test; found {', '.join(sorted(data.privleak))}")
    return data


# --- writing the synthetic world in MUSE's layout -----------------------------------------------------------

def _biography(items: list[dict[str, Any]]) -> str:
    """One author's facts as a paragraph of question-answer sentences: the corpus MUSE would hold about them."""
    return " ".join(f"{it['question']} {it['answer']}" for it in items)


def _verbatim(doc: str) -> dict[str, str]:
    """A verbatim item: the first half of a document's words as the prompt, the rest as the continuation."""
    words = doc.split(" ")
    cut = max(1, len(words) // 2)
    return {"prompt": " ".join(words[:cut]), "gt": " ".join(words[cut:])}


def write_muse(world, out: str | Path, split: str = "forget10") -> list[Path]:
    """Write ``world`` in MUSE's layout: biographies of the ``split`` authors are the forget corpus, of the other
    trained authors the retain corpora, of the holdout authors the holdout; QA items are knowledge questions."""
    out = Path(out)
    forget_authors = world.splits[split]
    retain_authors = world.retain_authors()
    bios = {n: _biography(items) for n, items in world.authors.items()}
    forget_docs = [bios[n] for n in forget_authors]
    half = len(retain_authors) // 2
    qa = lambda names: [{"question": r["question"], "answer": r["value"]} for r in world.items(names)]  # noqa: E731
    files: dict[str, Any] = {
        "raw/forget.json": forget_docs,
        "raw/retain1.json": [bios[n] for n in retain_authors[:half]],
        "raw/retain2.json": [bios[n] for n in retain_authors[half:]],
        "raw/holdout.json": [bios[n] for n in world.holdout],
        "verbmem/forget.json": [_verbatim(d) for d in forget_docs],
        "knowmem/forget_qa.json": qa(forget_authors)[2:],
        "knowmem/forget_qa_icl.json": qa(forget_authors)[:2],
        "knowmem/retain_qa.json": qa(retain_authors[half:])[2:],
        "knowmem/retain_qa_icl.json": qa(retain_authors[half:])[:2],
        "privleak/forget.json": forget_docs,
        "privleak/retain.json": [bios[n] for n in retain_authors[half:]][:len(forget_docs)],
        "privleak/holdout.json": [bios[n] for n in world.holdout],
    }
    for name, rows in files.items():
        atomic_write_text(out / name, json.dumps(rows, ensure_ascii=False, indent=0) + "\n")
    return [out / name for name in files]

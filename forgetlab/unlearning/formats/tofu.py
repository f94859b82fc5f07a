"""TOFU (Maini et al. 2024) as published on the hub (``locuslab/TOFU``): its file names and per-file schemas.

Files are JSON lines under ``.json`` names (JSON arrays are read too). What each file holds, and what the
loader needs of it (other fields are ignored):

| file                                             | fields needed                                             |
|--------------------------------------------------|-----------------------------------------------------------|
| ``forgetXX_perturbed.json`` (else ``forgetXX.json``) | question, answer (+ paraphrased_answer, perturbed_answer) |
| ``holdoutXX.json``                               | question, answer (never-seen authors: MIA non-members)    |
| ``retain_perturbed.json``                        | question, answer, paraphrased_answer, perturbed_answer    |
| ``real_authors_perturbed.json`` (else ``real_authors.json``) | question, answer, perturbed_answer (else option1..4) |
| ``world_facts_perturbed.json`` (else ``world_facts.json``)   | question, answer, perturbed_answer (else option1..4) |

Only the forget split is required; without ``*_perturbed`` the truth ratio (and so forget quality) cannot be
computed, without a holdout there is no membership inference, and model utility is the harmonic mean of the
utility sets present. :func:`write_tofu` writes the synthetic world (:mod:`forgetlab.unlearning.world`) in this
layout, with ``full.json``, ``forgetXX.json`` and ``retainYY.json`` as TOFU ships them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...errors import ForgetlabError, check_choice
from ...runs import atomic_write_text
from .files import Expected, check_folder, check_rows, check_strings, find, layout_error, read_records

SPLITS = ("forget01", "forget05", "forget10")
QA = ("question", "answer")
FULL = ("question", "answer", "paraphrased_answer", "perturbed_answer")
OPTIONS = tuple(f"option{i}" for i in range(1, 5))


def expected(split: str) -> list[Expected]:
    """The files of a TOFU folder for ``split``, in the order they are looked for."""
    n = split[-2:]
    return [Expected("forget split", (f"{split}_perturbed.json", f"{split}.json"), QA),
            Expected("holdout (optional)", (f"holdout{n}.json",), QA),
            Expected("retain (optional)", ("retain_perturbed.json",), FULL),
            Expected("real authors (optional)", ("real_authors_perturbed.json", "real_authors.json"),
                     ("question", "answer", "perturbed_answer")),
            Expected("world facts (optional)", ("world_facts_perturbed.json", "world_facts.json"),
                     ("question", "answer", "perturbed_answer"))]


def _qa_rows(path: Path, full: bool) -> list[dict[str, Any]]:
    rows = check_rows(read_records(path), path, FULL if full else QA)
    for f in ("question", "answer", *(("paraphrased_answer",) if full else ())):
        check_strings(rows, path, f)
    if full:
        check_strings(rows, path, "perturbed_answer", as_list=True)
    return rows


def _utility_rows(folder: Path, name: str) -> list[dict[str, Any]]:
    """A real-authors / world-facts set: the perturbed file, else the options file (wrong options become the
    perturbed answers), else none."""
    path = folder / f"{name}_perturbed.json"
    if path.is_file():
        rows = check_rows(read_records(path), path, ("question", "answer", "perturbed_answer"))
        check_strings(rows, path, "perturbed_answer", as_list=True)
        return rows
    path = folder / f"{name}.json"
    if not path.is_file():
        return []
    rows = check_rows(read_records(path), path, ("question", "answer"))
    out = []
    for i, r in enumerate(rows, start=1):
        wrong = [r[o] for o in OPTIONS if isinstance(r.get(o), str) and r[o] != r["answer"]]
        if not wrong:
            raise ForgetlabError(f"{path}: line {i}: no perturbed_answer and no wrong option{{1..4}} to use instead")
        out.append({**r, "perturbed_answer": wrong})
    check_strings(out, path, "perturbed_answer", as_list=True)
    return out


def load_tofu(folder: str | Path, split: str = "forget10"):
    """The :class:`~forgetlab.unlearning.evaluate.EvalData` of a TOFU folder for ``split`` (optional parts empty).

    A folder without the split's files is a one-line error listing every file and field TOFU's layout has.
    """
    from ..evaluate import EvalData

    folder = check_folder(folder, "TOFU")
    check_choice("split", split, SPLITS)
    forget_path = find(folder, (f"{split}_perturbed.json", f"{split}.json"))
    if forget_path is None:
        raise layout_error(folder, "TOFU", expected(split))
    forget = _qa_rows(forget_path, full=forget_path.name.endswith("_perturbed.json"))
    hold = folder / f"holdout{split[-2:]}.json"
    retain = folder / "retain_perturbed.json"
    return EvalData(forget, _qa_rows(hold, False) if hold.is_file() else [],
                    _qa_rows(retain, True) if retain.is_file() else [],
                    _utility_rows(folder, "real_authors"), _utility_rows(folder, "world_facts")).validate()


# --- writing the synthetic world in TOFU's layout -----------------------------------------------------------

def _lines(rows: list[dict[str, Any]], fields: tuple[str, ...]) -> str:
    return "".join(json.dumps({f: r[f] for f in fields if f in r}, ensure_ascii=False) + "\n" for r in rows)


def _options(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``real_authors.json``-style rows: the answer among three wrong options, in a fixed position per item."""
    out = []
    for i, r in enumerate(rows):
        opts = list(r["perturbed_answer"][:3])
        opts.insert(i % 4, r["answer"])
        out.append({"question": r["question"], **dict(zip(OPTIONS, opts, strict=True)), "answer": r["answer"]})
    return out


def write_tofu(world, out: str | Path) -> list[Path]:
    """Write ``world`` in TOFU's published layout into ``out`` (JSON lines under TOFU's file names)."""
    out = Path(out)
    pert = ("question", "answer", "paraphrased_question", "paraphrased_answer", "perturbed_answer")
    files: dict[str, str] = {"full.json": _lines(world.items(world.trained_authors()), QA)}
    for split in world.splits:
        n = split[-2:]
        authors = world.splits[split]
        files[f"{split}.json"] = _lines(world.forget(split), QA)
        files[f"{split}_perturbed.json"] = _lines(world.forget(split), pert)
        files[f"retain{100 - int(n):02d}.json"] = _lines(world.items(world.trained_authors(exclude=authors)), QA)
        files[f"holdout{n}.json"] = _lines(world.items(world.holdout[:max(1, len(authors))]), QA)
    files["retain_perturbed.json"] = _lines(world.items(world.retain_authors()), pert)
    for name, rows in (("real_authors", world.painters), ("world_facts", world.world_facts)):
        files[f"{name}.json"] = _lines(_options(rows), ("question", *OPTIONS, "answer"))
        files[f"{name}_perturbed.json"] = _lines(rows, ("question", "answer", "paraphrased_answer",
                                                        "perturbed_answer"))
    for name, text in files.items():
        atomic_write_text(out / name, text)
    return [out / name for name in files]

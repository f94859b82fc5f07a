"""WMDP (Li et al. 2024) as published on the hub (``cais/wmdp``): one subset per hazard domain, multiple choice.

Subsets are named ``wmdp-bio``, ``wmdp-chem``, ``wmdp-cyber`` (any ``wmdp-*`` is read) and each holds rows
``{"question", "choices": [4 strings], "answer": index}``; the answer may also be a letter or the choice text
(:class:`~forgetlab.eco.mc.MCItem`, the project's one multiple-choice schema). A subset is found as
``wmdp-bio/test-00000-of-00001.parquet`` (the hub's files), ``wmdp-bio/test.jsonl``, ``wmdp-bio.jsonl``,
``wmdp-bio.json`` or ``wmdp-bio.parquet``. :func:`write_wmdp` writes the synthetic world's subjects as
``wmdp-<subject>.jsonl``.
"""

from __future__ import annotations

from pathlib import Path

from ...eco.mc import MCItem
from ...errors import BadInput, ForgetlabError
from ...runs import atomic_write_text
from .files import Expected, check_folder, find, layout_error, read_records

FIELDS = ("question", "choices", "answer")
PATTERNS = ("{s}/test-*.parquet", "{s}/test.jsonl", "{s}/test.json", "{s}.jsonl", "{s}.json", "{s}.parquet")


def mc_items(path: Path, subject: str) -> list[MCItem]:
    """The multiple-choice rows of one file as :class:`MCItem` (errors name the file, the line and the field)."""
    rows = read_records(path)
    if not rows:
        raise ForgetlabError(f"{path}: no items (empty file)")
    try:
        return [MCItem.from_dict(r, where=f"{path}: line {i}", subject=subject) for i, r in enumerate(rows, 1)]
    except BadInput as exc:
        raise ForgetlabError(str(exc)) from None


def _subsets(folder: Path) -> list[str]:
    names = {p.name.split(".")[0] for p in folder.iterdir() if p.name.startswith("wmdp-")}
    return sorted(names)


def load_wmdp(folder: str | Path, subsets: tuple[str, ...] = ()) -> dict[str, list[MCItem]]:
    """``{subset: items}`` of the WMDP folder (every ``wmdp-*`` subset, or only ``subsets``)."""
    folder = check_folder(folder, "WMDP")
    names = list(subsets) or _subsets(folder)
    expected = [Expected("a subset", tuple(p.format(s="wmdp-bio") for p in PATTERNS), FIELDS)]
    if not names:
        raise layout_error(folder, "WMDP", expected)
    out = {}
    for name in names:
        path = find(folder, [p.format(s=name) for p in PATTERNS])
        if path is None:
            raise layout_error(folder, "WMDP", [Expected(name, tuple(p.format(s=name) for p in PATTERNS), FIELDS)])
        out[name] = mc_items(path, name)
    return out


def write_wmdp(world, out: str | Path) -> list[Path]:
    """Write the world's multiple-choice subjects as WMDP subsets ``wmdp-<subject>.jsonl`` (integer answers)."""
    import json

    out = Path(out)
    paths = []
    for subject, rows in world.mc.items():
        p = out / f"wmdp-{subject}.jsonl"
        items = [MCItem.from_dict({"question": r["question"], "choices": r["choices"], "answer": r["label"]},
                                  subject=subject) for r in rows]
        atomic_write_text(p, "".join(json.dumps({k: v for k, v in it.to_dict().items() if k in FIELDS}) + "\n"
                                     for it in items))
        paths.append(p)
    return paths

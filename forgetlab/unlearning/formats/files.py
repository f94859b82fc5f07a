"""Reading the files of published benchmarks: JSON arrays, JSON lines (also under a ``.json`` name, as TOFU ships
them), Parquet (Hugging Face exports, with the optional ``pyarrow``), CSV (MMLU's original release) and plain text.

Every error is one line naming the file, the line (or row) and the field, or, for a missing file, the folder,
the file names that were looked for and the fields they must hold: :func:`layout_error`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import BadInput, ForgetlabError
from ...runs import iter_jsonl

RECORD_SUFFIXES = (".json", ".jsonl", ".parquet")


@dataclass(frozen=True)
class Expected:
    """One file a layout may hold: the names it goes by (first found wins) and the fields its rows need."""

    what: str
    names: tuple[str, ...]
    fields: tuple[str, ...]

    def describe(self) -> str:
        """``forget10_perturbed.json (question, answer, ...)``: for error messages."""
        return " or ".join(self.names) + f" ({', '.join(self.fields)})" if self.fields else " or ".join(self.names)


def layout_error(folder: Path, suite: str, expected: Sequence[Expected]) -> ForgetlabError:
    """The one-line error for a folder that is not in ``suite``'s layout, listing the files and fields it needs."""
    need = "; ".join(f"{e.what}: {e.describe()}" for e in expected)
    return ForgetlabError(f"{folder}: not a {suite} folder; expected {need}")


def find(folder: Path, names: Sequence[str]) -> Path | None:
    """The first of ``names`` (relative paths, glob patterns allowed) that exists under ``folder``."""
    for name in names:
        if any(c in name for c in "*?["):
            hits = sorted(folder.glob(name))
            if hits:
                return hits[0]
        elif (folder / name).is_file():
            return folder / name
    return None


def read_records(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSON-array, JSON-lines or Parquet file as dicts; a JSON array of strings becomes
    ``{"text": ...}`` rows (MUSE's privleak and raw files). Errors name the file and line."""
    if path.suffix == ".parquet":
        return _read_parquet(path)
    text = _read_text(path)
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ForgetlabError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
        rows = [{"text": r} if isinstance(r, str) else r for r in data]
        bad = next((i for i, r in enumerate(rows) if not isinstance(r, dict)), None)
        if bad is not None:
            raise ForgetlabError(f"{path}: item {bad + 1}: expected a JSON object or string, "
                                 f"got {type(rows[bad]).__name__}")
        return rows
    return [obj for _, obj in iter_jsonl(path)]


def read_text(path: Path) -> str:
    """A UTF-8 text file (MUSE's raw corpora); errors name the file."""
    return _read_text(path)


def read_csv_rows(path: Path, width: int) -> list[list[str]]:
    """Rows of a header-less CSV file, each with exactly ``width`` cells (MMLU's original release)."""
    rows = []
    with open(path, newline="", encoding="utf-8") as fh:
        for lineno, row in enumerate(csv.reader(fh), start=1):
            if not row:
                continue
            if len(row) != width:
                raise ForgetlabError(f"{path}: row {lineno}: {len(row)} cells; expected {width} "
                                     "(question, the choices, the answer letter)")
            rows.append(row)
    return rows


def check_rows(rows: list[dict[str, Any]], path: Path, fields: Sequence[str]) -> list[dict[str, Any]]:
    """Refuse an empty file or a row without one of ``fields``; errors name the file, the row and the field."""
    if not rows:
        raise ForgetlabError(f"{path}: no items (empty file)")
    for i, row in enumerate(rows, start=1):
        for f in fields:
            if f not in row or row[f] is None:
                raise ForgetlabError(f"{path}: line {i}: missing field {f!r} (this file needs "
                                     f"{', '.join(fields)})")
    return rows


def check_strings(rows: list[dict[str, Any]], path: Path, field: str, *, as_list: bool = False) -> None:
    """Every row's ``field`` is a string (or, ``as_list``, a non-empty list of strings of one common length)."""
    n = None
    for i, row in enumerate(rows, start=1):
        v = row.get(field)
        if as_list:
            if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
                raise ForgetlabError(f"{path}: line {i}: field {field!r} must be a non-empty list of strings")
            if n is not None and len(v) != n:
                raise ForgetlabError(f"{path}: line {i}: field {field!r} has {len(v)} items; earlier lines have "
                                     f"{n} (all lists must have equal length)")
            n = len(v)
        elif not isinstance(v, str):
            raise ForgetlabError(f"{path}: line {i}: field {field!r} must be a string, got {type(v).__name__}")


def check_folder(folder: str | Path, suite: str) -> Path:
    """``folder`` as a Path, or :class:`BadInput` naming ``data`` when it is not a folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BadInput("data", str(folder), f"a folder of {suite} files in their published layout")
    return folder


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ForgetlabError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise ForgetlabError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ForgetlabError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow, or export the "
                             "split as JSON lines)") from None
    try:
        return pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise ForgetlabError(f"{path}: not a readable Parquet file ({type(exc).__name__})") from None

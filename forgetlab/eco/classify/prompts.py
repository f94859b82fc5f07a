"""Prompt files: one JSON object per line, the prompt in ``prompt``, ``text`` or ``question``."""

from __future__ import annotations

from pathlib import Path

from ...errors import ForgetlabError, check_choice
from ...runs import iter_jsonl

PROMPT_FIELDS = ("prompt", "text", "question")


def load_prompts(path: str | Path, field: str | None = None, option: str = "path") -> list[str]:
    """Read one prompt per JSONL line from ``field`` (``prompt``, ``text`` or ``question``; None: the first of
    these present in line 1). Blank lines are skipped; every error names the file and line (a missing file: the
    ``option`` that named it)."""
    if field is not None:
        check_choice("field", field, PROMPT_FIELDS)
    path = Path(path)
    prompts: list[str] = []
    for lineno, obj in iter_jsonl(path, option):
        if field is None:
            field = next((f for f in PROMPT_FIELDS if f in obj), None)
            if field is None:
                raise ForgetlabError(f"{path}: line {lineno}: missing field (one of "
                                     f"{', '.join(PROMPT_FIELDS)}); has {', '.join(sorted(obj)) or 'none'}")
        if field not in obj:
            raise ForgetlabError(f"{path}: line {lineno}: missing field {field!r}")
        value = obj[field]
        if not isinstance(value, str) or not value.strip():
            raise ForgetlabError(f"{path}: line {lineno}: field {field!r} must be a non-empty string, "
                                 f"got {value!r}"[:300])
        prompts.append(value)
    if not prompts:
        raise ForgetlabError(f"{path}: empty file (expected one JSON object per line with a "
                             f"{field or '/'.join(PROMPT_FIELDS)} field)")
    return prompts


def load_texts(path: str | Path, fields: tuple[str, ...]) -> list[str]:
    """Every non-empty string value of ``fields`` in a JSONL file (e.g. the answers beside forget prompts);
    lines without them contribute nothing."""
    return [obj[f] for _, obj in iter_jsonl(Path(path)) for f in fields
            if isinstance(obj.get(f), str) and obj[f].strip()]

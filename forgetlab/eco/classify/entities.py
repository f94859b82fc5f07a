"""Mining forget-entity names from prompts: capitalized word runs seen in forget prompts and in no retain one."""

from __future__ import annotations

import re
from collections.abc import Sequence


def mine_entities(forget: Sequence[str], retain: Sequence[str], min_count: int = 2) -> list[str]:
    """Capitalized word runs (``Basil Mahfouz Al-Kuwaiti``) in >= ``min_count`` forget prompts, in no retain
    prompt, most frequent first; runs that only open a sentence (one capitalized word) are skipped."""
    run = re.compile(r"(?<![\w])[A-Z][\w'’-]*(?:[ \-][A-Z][\w'’-]*)*")
    opener = re.compile(r"(?:^|[.!?]\s+)$")

    def runs(text: str) -> set[str]:
        found = set()
        for m in run.finditer(text):
            name = re.sub(r"['’]s$", "", m.group())
            if " " not in name and "-" not in name and opener.search(text[:m.start()]):
                continue
            found.add(name)
        return found

    retain_text = "\n".join(retain).lower()
    counts: dict[str, int] = {}
    for p in forget:
        for name in runs(p):
            counts[name] = counts.get(name, 0) + 1
    keep = [n for n, c in counts.items() if c >= min_count and n.lower() not in retain_text]
    return sorted(keep, key=lambda n: (-counts[n], n))

"""Mining what a forget set is about from its text: entity names (capitalized word runs seen in forget prompts
and in no retain one) and indirect references (titles of works and other distinctive capitalized phrases of the
forget texts, answers included, that avoid the name)."""

from __future__ import annotations

import re
from collections.abc import Sequence

_RUN = re.compile(r"(?<![\w])[A-Z][\w'’-]*(?:[ \-][A-Z][\w'’-]*)*")
_OPENER = re.compile(r"(?:^|[.!?]\s+)$")
_ARTICLES = ("The ", "A ", "An ")


def _runs(text: str, keep_openers: bool = False) -> set[str]:
    """Capitalized word runs of ``text``, a possessive ``'s`` cut; a lone word opening a sentence is skipped
    unless ``keep_openers``."""
    found = set()
    for m in _RUN.finditer(text):
        name = re.sub(r"['’]s$", "", m.group())
        if not keep_openers and " " not in name and "-" not in name and _OPENER.search(text[:m.start()]):
            continue
        found.add(name)
    return found


def mine_entities(forget: Sequence[str], retain: Sequence[str], min_count: int = 2) -> list[str]:
    """Capitalized word runs (``Basil Mahfouz Al-Kuwaiti``) in >= ``min_count`` forget prompts, in no retain
    prompt, most frequent first; runs that only open a sentence (one capitalized word) are skipped."""
    retain_text = "\n".join(retain).lower()
    counts: dict[str, int] = {}
    for p in forget:
        for name in _runs(p):
            counts[name] = counts.get(name, 0) + 1
    keep = [n for n, c in counts.items() if c >= min_count and n.lower() not in retain_text]
    return sorted(keep, key=lambda n: (-counts[n], n))


def mine_references(forget_texts: Sequence[str], retain_texts: Sequence[str], entities: Sequence[str],
                    min_words: int = 2) -> list[str]:
    """Indirect references: capitalized runs of at least ``min_words`` words (``Silent Harbor``, a book title)
    in the forget texts (questions and answers), in no retain text, sharing no word with an entity name (those
    are the names themselves), a leading article dropped; sorted. A prompt naming one is about the forget
    target even when it avoids the name ("Who wrote Silent Harbor?")."""
    retain_text = "\n".join(retain_texts).lower()
    entity_words = {w.lower() for e in entities for w in re.findall(r"[^\W_]+", e)}
    found = set()
    for text in forget_texts:
        for run in _runs(text, keep_openers=True):
            for article in _ARTICLES:
                run = run[len(article):] if run.startswith(article) else run
            words = re.findall(r"[^\W_]+", run)
            if (len(words) >= min_words and run.lower() not in retain_text
                    and not any(w.lower() in entity_words for w in words)):
                found.add(run)
    return sorted(found)

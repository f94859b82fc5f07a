"""Which characters of a flagged prompt name a forget entity: the token classifier of entity-level corruption.

:class:`TokenClassifier` matches known forget entities exactly, case-insensitively and with one edit per long
name part; :func:`token_mask_from_spans` maps its character spans to any LM's tokens; :func:`entity_flags`
tells whether a prompt names a forget entity at all (the name half of a guard's flag rule).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import BadInput, ForgetlabError, check_choice
from ...runs import atomic_write_json, prepare_out_dir, read_record
from .entities import mine_entities

FORMAT_TOKEN = "forgetlab.eco.TokenClassifier"
FORMAT_VERSION = 1


_WORD = re.compile(r"[^\W_]+")
_MAX_GAP = 3  # characters allowed between the words of a multi-word entity ("Al-Kuwaiti", "Jr., ")


def _edit_distance_le1(a: str, b: str) -> bool:
    """Whether the Levenshtein distance of ``a`` and ``b`` is at most 1."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la > lb:
        a, b, la, lb = b, a, lb, la
    i = 0
    while i < la and a[i] == b[i]:
        i += 1
    return a[i + 1:] == b[i + 1:] if la == lb else a[i:] == b[i + 1:]


@dataclass
class TokenClassifier:
    """Character spans of a prompt that name a forget entity (to corrupt only those tokens).

    Matching is case-insensitive on words (``[^\\W_]+``). A full entity matches as its words in order, at most
    ``_MAX_GAP`` characters apart; so does a run of two or more of its consecutive words holding a distinctive
    word ("Al-Kuwaiti" of "Basil Mahfouz Al-Kuwaiti"). A distinctive word also matches alone: at least
    ``min_part_len`` long and not in ``common`` (words seen in retain prompts, so a shared first name such as
    "Maria" is corrupted only as part of the full forget name). Words of at least ``fuzzy_min_len`` characters
    match with one edit (typos), unless the word is itself in ``common``; a lone word only when capitalized.
    ``fallback`` decides what a prompt without a match gets: ``"all"`` (the whole prompt, ECO's default) or
    ``"none"``. Rules, not a trained tagger: they behave the same on every LM tokenizer and their misses are
    easy to read.
    """

    entities: list[str]
    common: list[str] = field(default_factory=list)
    min_part_len: int = 4
    fuzzy_min_len: int = 5
    fallback: str = "all"

    def __post_init__(self) -> None:
        check_choice("fallback", self.fallback, ("all", "none"))
        self._parts = [[w.lower() for w in _WORD.findall(e)] for e in self.entities]
        self._parts = [p for p in self._parts if p]
        common = {c.lower() for c in self.common}
        self._common = common
        self._singles = sorted({w for parts in self._parts for w in parts
                                if len(w) >= self.min_part_len and w not in common})

    @classmethod
    def fit(cls, entities: Sequence[str] | None = None, *, forget: Sequence[str] | None = None,
            retain: Sequence[str] | None = None, min_count: int = 2, fallback: str = "all") -> TokenClassifier:
        """From known entity names, or (when ``entities`` is None) mined from the prompts: capitalized word runs
        seen in at least ``min_count`` forget prompts and in no retain prompt. Retain words become ``common``."""
        retain = list(retain or [])
        retain_words = sorted({w.lower() for p in retain for w in _WORD.findall(p)})
        if entities is None:
            if not forget:
                raise BadInput("entities", None, "a list of entity names, or forget prompts to mine them from")
            entities = mine_entities(forget, retain, min_count=min_count)
        entities = [e for e in dict.fromkeys(entities) if isinstance(e, str) and _WORD.search(e)]
        if not entities:
            raise BadInput("entities", "none found", "at least one entity name with a letter or digit")
        return cls(entities=list(entities), common=retain_words, fallback=fallback)

    def _match(self, word: str, part: str) -> bool:
        if word == part:
            return True
        # a typo match, unless the word is itself a known retain word ("Isolde" is not a typo of "Isolda")
        return (len(part) >= self.fuzzy_min_len and word not in self._common
                and _edit_distance_le1(word, part))

    def entity_spans(self, prompt: str, lone_words: bool = True) -> list[tuple[int, int]]:
        """Character spans of entity mentions (full names and distinctive single words), merged, sorted.

        ``lone_words=False`` keeps only full names and runs of two or more entity words: the mentions that
        identify the entity (a lone first name is often shared by other people)."""
        words = [(m.group().lower(), m.start(), m.end()) for m in _WORD.finditer(prompt)]
        spans: list[tuple[int, int]] = []
        singles = set(self._singles)
        for i in range(len(words)):
            for parts in self._parts:
                for j0 in range(len(parts)):  # runs of consecutive entity words, from any of its words
                    j = 0
                    while (j0 + j < len(parts) and i + j < len(words)
                           and self._match(words[i + j][0], parts[j0 + j])
                           and (j == 0 or words[i + j][1] - words[i + j - 1][2] <= _MAX_GAP)):
                        j += 1
                    whole = j == len(parts)
                    if whole or (j >= 2 and any(p in singles for p in parts[j0:j0 + j])):
                        spans.append((words[i][1], words[i + j - 1][2]))
            w, a, b = words[i]
            # a lone word: exact, or a typo only when written as a name ("Quenbi", not "quiet" for "Quint")
            if not lone_words:
                continue
            if w in singles or (prompt[a].isupper() and any(self._match(w, s) for s in self._singles)):
                spans.append((a, b))
        return _merge(spans)

    def char_spans(self, prompt: str) -> list[tuple[int, int]]:
        """Spans to corrupt: the entity mentions, else ``[(0, len(prompt))]`` (``fallback="all"``) or ``[]``."""
        spans = self.entity_spans(prompt)
        if not spans and self.fallback == "all" and prompt:
            return [(0, len(prompt))]
        return spans

    def save_pretrained(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write ``token_classifier.json`` (the rules are the whole model: no tensors)."""
        path = prepare_out_dir(path, overwrite=overwrite, field="path")
        atomic_write_json(path / "token_classifier.json",
                          {"format": FORMAT_TOKEN, "format_version": FORMAT_VERSION,
                           "entities": self.entities, "common": self.common,
                           "min_part_len": self.min_part_len, "fuzzy_min_len": self.fuzzy_min_len,
                           "fallback": self.fallback})
        return path

    @classmethod
    def from_pretrained(cls, path: str | Path) -> TokenClassifier:
        meta = read_record(path, "token_classifier.json", FORMAT_TOKEN, FORMAT_VERSION)
        try:
            return cls(entities=list(meta["entities"]), common=list(meta.get("common", [])),
                       min_part_len=int(meta["min_part_len"]), fuzzy_min_len=int(meta["fuzzy_min_len"]),
                       fallback=meta["fallback"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ForgetlabError(f"{Path(path) / 'token_classifier.json'}: broken record ({exc})") from None


def entity_flags(token_classifier: TokenClassifier, prompts: Sequence[str]) -> np.ndarray:
    """``bool [N]``: does each prompt name a forget entity (its full name or two or more of its words in a row,
    typos allowed). A lone name part does not count: other people share first names and surnames (measured in
    the unlearning bench: lone parts flagged 20% of never-seen authors' questions on forget10).

    ORed with a prompt classifier's flags, a name the classifier scores low is still caught: the classifier
    learns what forget prompts look like, the matcher knows who they are about.
    """
    return np.array([bool(token_classifier.entity_spans(p, lone_words=False)) for p in prompts], dtype=bool)


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def token_mask_from_spans(offset_mapping: Any, spans: Sequence[tuple[int, int]]) -> list[bool]:
    """Which tokens to corrupt: True where a token's character range ``[start, end)`` overlaps a span.

    ``offset_mapping``: the LM tokenizer's ``return_offsets_mapping`` for one prompt (``[T, 2]``, list or
    tensor); special tokens (empty ranges) are never selected.
    """
    offsets = offset_mapping.tolist() if hasattr(offset_mapping, "tolist") else offset_mapping
    mask = []
    for start, end in offsets:
        mask.append(end > start and any(start < b and end > a for a, b in spans))
    return mask

"""Which characters of a flagged prompt name a forget entity: the token classifier of entity-level corruption.

:class:`TokenClassifier` matches known forget entities on the normalized prompt
(:func:`~forgetlab.eco.classify.normalize.normalize`: case, homoglyphs, zero-width characters, spaced letters,
digits for letters), with one edit per long name part, in any split ("Quen by Ash-grove"), reversed ("Ashgrove,
Quenby"), by initial ("Q. Ashgrove"), possessive or not (a title and a surname alone is not a mention: other
people share surnames), and also matches indirect
references (titles of works, rare terms mined from the forget set); :func:`token_mask_from_spans` maps its
character spans (in the original prompt) to any LM's tokens; :func:`entity_flags` tells whether a prompt names
a forget entity at all (the name half of a guard's flag rule).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import BadInput, ForgetlabError, check_choice
from ...runs import atomic_write_json, prepare_out_dir, read_record
from .entities import mine_entities
from .normalize import LEET, Normalized, normalize, normalize_text, squash

FORMAT_TOKEN = "forgetlab.eco.TokenClassifier"
FORMAT_VERSION = 2  # 2: references (indirect references that flag)


_WORD = re.compile(r"[^\W_]+")
_MAX_GAP = 3  # characters allowed between the words of a multi-word entity ("Al-Kuwaiti", "Jr., ")
_FULL_NAME_FUZZY_LEN = 3  # inside a whole multi-word name, words this long may carry a typo ("Olra Marorwby")
_TWO_TYPO_LEN = 6  # ... and words this long two, when another word of the name is exact ("Nestor Inlgweood")
_MIN_SQUASHED = 8  # a full name written with separators anywhere matches when its letters are at least this many
# Prompts whose spans one classifier remembers: a strength fit re-scores the same fit prompts dozens of times
# (and each 7 times per scoring), and the rules cost about 1.6 ms a prompt, more than the tiny LM's scoring.
# Bounded in entries and in prompt length, so a server's stream of unique (possibly long) prompts holds at most
# a few MB
SPANS_CACHE_SIZE = 4096
SPANS_CACHE_MAX_CHARS = 1024


def _edit_distance_le1(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` are at most one edit apart: an insertion, a deletion, a substitution or a swap of
    two adjacent letters (optimal-string-alignment distance; a swap is the commonest typo: "Olra" for "Orla")."""
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
    if la != lb:
        return a[i:] == b[i + 1:]
    swapped = i + 1 < la and a[i] == b[i + 1] and a[i + 1] == b[i] and a[i + 2:] == b[i + 2:]
    return swapped or a[i + 1:] == b[i + 1:]


def _osa_distance(a: str, b: str, cap: int) -> int:
    """The optimal-string-alignment distance of ``a`` and ``b`` (insertions, deletions, substitutions, adjacent
    swaps), or ``cap + 1`` once it must exceed ``cap``."""
    if abs(len(a) - len(b)) > cap:
        return cap + 1
    prev2, prev = None, list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if prev2 is not None and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > cap:
            return cap + 1
        prev2, prev = prev, cur
    return prev[-1]


def _deleet(word: str) -> str:
    """``word`` with digits and signs read as letters (``n3570r`` -> ``nestor``) when it mixes them with a letter;
    the matcher compares this form too. Unlike :func:`~forgetlab.eco.classify.normalize.normalize`, which keeps
    short mixed words (``mp3``, ``b12``) as written for the classifier, a decoded word here only matters when it
    equals a forget name, so no letter minimum is needed."""
    if word.isalpha() or not any(c.isalpha() for c in word):
        return word
    return "".join(LEET.get(c, c) for c in word)


@dataclass
class TokenClassifier:
    """Character spans of a prompt that name a forget entity (to corrupt only those tokens).

    Matching runs on the normalized prompt, on words (``[^\\W_]+``). A full entity matches as its words in order,
    at most ``_MAX_GAP`` characters apart, or reversed ("Ashgrove, Quenby"), or as its letters in a row with
    anything but letters between them ("Q u e n b y A s h g r o v e", ``_MIN_SQUASHED`` letters or more); so
    does a run of two or more of its consecutive words holding a distinctive word ("Al-Kuwaiti" of "Basil
    Mahfouz Al-Kuwaiti") and an initial with the last name ("Q. Ashgrove"); a title with the last name ("Dr.
    Ashgrove") is only a surname, which other people share. A distinctive word also matches alone: at least ``min_part_len`` long and not in
    ``common`` (words seen in retain prompts, so a shared first name such as "Maria" is corrupted only as part
    of the full forget name). Words of at least ``fuzzy_min_len`` characters match with one edit (typos; inside a
    whole multi-word name, words of 3 or more), unless the word is itself in ``common``; a lone word only when
    capitalized. Digits and signs written for letters are read as letters (``N3570r``). ``references`` (titles of works, rare
    terms tied to the entities) match as whole word sequences and count as mentions. ``fallback`` decides what
    a prompt without a match gets: ``"all"`` (the whole prompt, ECO's default) or ``"none"``. Rules, not a
    trained tagger: they behave the same on every LM tokenizer and their misses are easy to read.
    """

    entities: list[str]
    common: list[str] = field(default_factory=list)
    min_part_len: int = 4
    fuzzy_min_len: int = 5
    fallback: str = "all"
    references: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_choice("fallback", self.fallback, ("all", "none"))
        self._parts = [_WORD.findall(normalize_text(e)) for e in self.entities]
        self._parts = [p for p in self._parts if p]
        self._common = {normalize_text(c) for c in self.common}
        self._singles = frozenset(w for parts in self._parts for w in parts
                                  if len(w) >= self.min_part_len and w not in self._common)
        self._squashed = sorted({"".join(p) for p in self._parts if len("".join(p)) >= _MIN_SQUASHED})
        self._refs = [_WORD.findall(normalize_text(r)) for r in self.references]
        self._refs = [r for r in self._refs if r]
        self._fuzzy_len = self.fuzzy_min_len  # read once, like every other rule: the memo cannot go stale
        self._new_memo()

    def _new_memo(self) -> None:
        """A fresh per-prompt memo of :meth:`_find_spans`, bound to this instance."""
        self._spans = lru_cache(maxsize=SPANS_CACHE_SIZE)(self._find_spans)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (a worker process, a copy) without the memo: an lru_cache bound to this instance."""
        return {k: v for k, v in self.__dict__.items() if k != "_spans"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._new_memo()

    @classmethod
    def fit(cls, entities: Sequence[str] | None = None, *, forget: Sequence[str] | None = None,
            retain: Sequence[str] | None = None, min_count: int = 2, fallback: str = "all",
            references: Sequence[str] = ()) -> TokenClassifier:
        """From known entity names, or (when ``entities`` is None) mined from the prompts: capitalized word runs
        seen in at least ``min_count`` forget prompts and in no retain prompt. Retain words become ``common``.
        ``references``: indirect references to flag too (:func:`~forgetlab.eco.classify.entities.mine_references`)."""
        retain = list(retain or [])
        retain_words = sorted({w for p in retain for w in _WORD.findall(normalize_text(p))})
        if entities is None:
            if not forget:
                raise BadInput("entities", None, "a list of entity names, or forget prompts to mine them from")
            entities = mine_entities(forget, retain, min_count=min_count)
        entities = [e for e in dict.fromkeys(entities) if isinstance(e, str) and _WORD.search(e)]
        if not entities:
            raise BadInput("entities", "none found", "at least one entity name with a letter or digit")
        refs = [r for r in dict.fromkeys(references) if isinstance(r, str) and _WORD.search(r)]
        return cls(entities=list(entities), common=retain_words, fallback=fallback, references=refs)

    def _match(self, word: str, part: str, min_len: int | None = None) -> bool:
        """``word`` is ``part``: exactly, digits read as letters, or (``part`` at least ``min_len`` long, default
        ``fuzzy_min_len``) one typo away, unless the word is itself a known retain word ("Isolde" is not a typo
        of "Isolda")."""
        word = _deleet(word)
        if word == part:
            return True
        return (len(part) >= (self._fuzzy_len if min_len is None else min_len) and word not in self._common
                and _edit_distance_le1(word, part))

    def _run(self, words: list[tuple[str, int, int]], i: int, parts: Sequence[str], exact: bool = False,
             min_len: int | None = None) -> int:
        """How many of ``parts`` match ``words`` from ``i`` on, in order, at most ``_MAX_GAP`` apart."""
        j = 0
        while (j < len(parts) and i + j < len(words)
               and (words[i + j][0] == parts[j] if exact else self._match(words[i + j][0], parts[j], min_len))
               and (j == 0 or words[i + j][1] - words[i + j - 1][2] <= _MAX_GAP)):
            j += 1
        return j

    def _whole_name_with_typos(self, words: list[tuple[str, int, int]], i: int, parts: Sequence[str]) -> bool:
        """A whole multi-word name from word ``i``, in order: every word one typo away (words of 3 or more
        letters: "Olra Marorwby"), or one word exact and the others two typos away (words of 6 or more letters:
        "Nestor Inlgweood"). Known retain words never count as typos."""
        if len(parts) < 2 or i + len(parts) > len(words) or any(
                words[i + k][1] - words[i + k - 1][2] > _MAX_GAP for k in range(1, len(parts))):
            return False
        ws = [_deleet(w[0]) for w in words[i:i + len(parts)]]
        if self._run(words, i, parts, min_len=_FULL_NAME_FUZZY_LEN) == len(parts):
            return True
        if not any(w == p for w, p in zip(ws, parts, strict=True)):
            return False
        return all(w == p or (len(p) >= _TWO_TYPO_LEN and w not in self._common and _osa_distance(w, p, 2) <= 2)
                   for w, p in zip(ws, parts, strict=True))

    def _name_spans(self, words: list[tuple[str, int, int]], i: int, norm: Normalized) -> list[tuple[int, int]]:
        """Identifying mentions starting at word ``i``: full names and runs, reversed and initial forms."""
        spans = []
        nxt = words[i + 1] if i + 1 < len(words) and words[i + 1][1] - words[i][2] <= _MAX_GAP else None
        for parts in self._parts:
            if self._whole_name_with_typos(words, i, parts):
                spans.append((words[i][1], words[i + len(parts) - 1][2]))
            for j0 in range(len(parts)):  # runs of consecutive entity words, from any of its words
                j = self._run(words, i, parts[j0:])
                if (j0 == 0 and j == len(parts)) or (j >= 2 and any(p in self._singles for p in parts[j0:j0 + j])):
                    spans.append((words[i][1], words[i + j - 1][2]))
            if len(parts) < 2 or nxt is None:
                continue
            last = parts[-1]
            if self._run(words, i, [last, parts[0]]) == 2:  # "Ashgrove, Quenby"
                spans.append((words[i][1], nxt[2]))
            initial = words[i][0] == parts[0][0] and norm.original[norm.origin[words[i][1]]].isupper()
            if initial and self._match(nxt[0], last):  # "Q. Ashgrove", not "a Bexa" for "Aurel Bexa"
                spans.append((words[i][1], nxt[2]))
        for ref in self._refs:
            if self._run(words, i, ref, exact=True) == len(ref):
                spans.append((words[i][1], words[i + len(ref) - 1][2]))
        return spans

    def _squashed_spans(self, text: str) -> list[tuple[int, int]]:
        """Full names written with anything but letters between their letters ("Q.u e-n b y Ash grove")."""
        flat, index = squash(text)
        spans = []
        for key in self._squashed:
            start = flat.find(key)
            while start >= 0:
                spans.append((index[start], index[start + len(key) - 1] + 1))
                start = flat.find(key, start + 1)
        return spans

    def entity_spans(self, prompt: str, lone_words: bool = True) -> list[tuple[int, int]]:
        """Character spans of entity mentions in ``prompt`` (full names, their identifying forms, references and
        distinctive single words), merged, sorted; remembered per prompt (the rules are a pure function of it).

        ``lone_words=False`` keeps only the identifying mentions: full names, runs of two or more entity words,
        initial and last name, and references (a lone first name is often shared by other people)."""
        if len(prompt) > SPANS_CACHE_MAX_CHARS:
            return list(self._find_spans(prompt, lone_words))
        return list(self._spans(prompt, lone_words))

    def _find_spans(self, prompt: str, lone_words: bool) -> tuple[tuple[int, int], ...]:
        """:meth:`entity_spans` computed (what the per-prompt memo calls)."""
        norm = normalize(prompt)
        words = [(m.group(), m.start(), m.end()) for m in _WORD.finditer(norm.text)]
        spans = self._squashed_spans(norm.text)
        for i in range(len(words)):
            spans += self._name_spans(words, i, norm)
            if lone_words and self._lone(norm, *words[i]):
                spans.append(words[i][1:])
        return tuple(_merge([norm.span(a, b) for a, b in spans]))

    def _lone(self, norm: Normalized, w: str, a: int, b: int) -> bool:
        """A lone distinctive word: exact, or a typo only when written as a name ("Quenbi", not "quiet")."""
        if w in self._singles:
            return True
        return norm.original[norm.origin[a]].isupper() and any(self._match(w, s) for s in self._singles)

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
                           "fallback": self.fallback, "references": self.references})
        return path

    @classmethod
    def from_pretrained(cls, path: str | Path) -> TokenClassifier:
        meta = read_record(path, "token_classifier.json", FORMAT_TOKEN, FORMAT_VERSION)
        try:
            return cls(entities=list(meta["entities"]), common=list(meta.get("common", [])),
                       min_part_len=int(meta["min_part_len"]), fuzzy_min_len=int(meta["fuzzy_min_len"]),
                       fallback=meta["fallback"], references=list(meta.get("references", [])))
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

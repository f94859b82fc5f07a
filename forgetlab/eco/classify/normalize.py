"""One normalization step before every flag decision: the classifier and the entity matcher see the same text.

Rewrites that keep a prompt readable to a person (and to the LM) but change its characters are undone:

==================  ===================================  ==========================================
attack              example                              normalized
==================  ===================================  ==========================================
compatibility form  ``Ｑｕｅｎｂｙ``, ``ﬁ``, ``①``     NFKC (``Quenby``, ``fi``, ``1``)
case                ``QUENBY ashgrove``                  case folding (``quenby ashgrove``)
homoglyphs          Cyrillic ``Аshgrоve``, Greek ``Αλ``  :data:`CONFUSABLES` (a look-alike table)
diacritics          ``Quénby``                           combining marks dropped (``quenby``)
zero-width          ``Quen\\u200bby``, soft hyphens       removed (:data:`INVISIBLE`)
spaced letters      ``Q u e n b y``, ``Q-u-e-n-b-y``     re-joined (``quenby``)
digit for letter    ``Qu3nby 4shgr0ve``                  :data:`LEET` in mixed words (``quenby ashgrove``)
==================  ===================================  ==========================================

:func:`normalize` returns the text with, for every character, the index of the original character it came
from, so a span found in the normalized text maps back to the original prompt (:meth:`Normalized.span`), which
is what entity-level corruption needs to pick the LM's tokens.

The look-alike table is written here rather than taken from a transliteration library: transliterators map by
sound (``unidecode`` turns Cyrillic ``р`` into ``r``), while an attacker picks a letter by shape (``р`` for
``p``). The table follows Unicode's confusables.txt for the Cyrillic and Greek letters that render like basic
Latin ones in common fonts.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

CONFUSABLES: dict[str, str] = {
    # Cyrillic (lower and upper case; after case folding only the lower forms remain)
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
    "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԛ": "q", "ԝ": "w", "ӏ": "l",
    "һ": "h", "ь": "b", "ɡ": "g", "ɑ": "a", "ο": "o",
    # Greek
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ρ": "p", "τ": "t",
    "υ": "u", "χ": "x", "γ": "y", "ω": "w", "ϲ": "c", "ϳ": "j", "ζ": "z", "μ": "u",
    # Latin look-alikes outside ASCII that NFKC keeps
    "ı": "i", "ȷ": "j", "ł": "l", "ø": "o", "đ": "d", "ħ": "h", "ŀ": "l",
}
"""Look-alike letter -> the basic Latin letter it is drawn like (applied after case folding)."""

INVISIBLE = frozenset("\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b\u200c\u200d\u200e\u200f"
                      "\u202a\u202b\u202c\u202d\u202e\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069"
                      "\u206a\u206b\u206c\u206d\u206e\u206f\u3164\ufeff\uffa0")
"""Characters that render as nothing (zero-width spaces and joiners, soft hyphen, bidi controls): removed."""

LEET: dict[str, str] = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "@": "a",
                        "$": "s", "!": "i", "|": "l"}
"""Digit or sign -> the letter it stands for, inside a word that mixes them with letters (:func:`_unleet`)."""

_SPACED = re.compile(r"(?<![^\W_])[^\W_](?:([ \-._*·•/+~])[^\W_](?![^\W_])(?:\1[^\W_](?![^\W_]))+)")
# a run of >= 3 single letters or digits joined by one repeated separator ("q-u-e-n-b-y", "q u e n b y")
_MIXED = re.compile(r"[0-9a-z@$!|]*[a-z][0-9a-z@$!|]*")
_ORDINAL = re.compile(r"^\d+(st|nd|rd|th|s)$")
_VERSION = re.compile(r"^[a-z]+\d{2,}$|^\d{2,}[a-z]+$|^\d+[a-z]{1,2}$")


@dataclass(frozen=True)
class Normalized:
    """A normalized text and, per character, the index of the original character it came from."""

    text: str
    origin: tuple[int, ...]
    original: str

    def span(self, a: int, b: int) -> tuple[int, int]:
        """The original character span ``[a', b')`` covering normalized characters ``[a, b)``."""
        if a >= b:
            return (self.origin[a] if a < len(self.origin) else len(self.original),) * 2
        return self.origin[a], self.origin[b - 1] + 1


def _fold_char(c: str) -> str:
    """NFKC, case folding, look-alikes and combining marks of one character (possibly several characters out)."""
    if c in INVISIBLE:
        return ""
    out = []
    for d in unicodedata.normalize("NFKC", c).casefold():
        d = CONFUSABLES.get(d, d)
        for e in unicodedata.normalize("NFKD", d):
            if not unicodedata.combining(e) and e not in INVISIBLE:
                out.append(CONFUSABLES.get(e, e))
    return "".join(out)


def _rejoin(text: str, origin: list[int]) -> tuple[str, list[int]]:
    """Join runs of single letters separated by one repeated separator; the separators are dropped."""
    out, out_origin, last = [], [], 0
    for m in _SPACED.finditer(text):
        out.append(text[last:m.start()])
        out_origin += origin[last:m.start()]
        sep = m.group(1)
        for i in range(m.start(), m.end()):
            if text[i] != sep:
                out.append(text[i])
                out_origin.append(origin[i])
        last = m.end()
    out.append(text[last:])
    out_origin += origin[last:]
    return "".join(out), out_origin


def _unleet(text: str) -> str:
    """Digits and signs read as letters inside words that mix them with at least three letters, except
    ordinals (``4th``), versions and units (``covid19``, ``10km``) and plain numbers."""
    def fix(m: re.Match) -> str:
        w = m.group()
        letters = sum(ch.isalpha() for ch in w)
        if letters == len(w) or letters < 3 or _ORDINAL.match(w) or _VERSION.match(w):
            return w
        core = w.strip("!|$@")  # a trailing "!" ends a sentence; it is not an "i"
        lead = w[:len(w) - len(w.lstrip("!|$@"))]
        trail = w[len(lead) + len(core):]
        return lead + "".join(LEET.get(ch, ch) for ch in core) + trail
    return _MIXED.sub(fix, text)


def normalize(text: str) -> Normalized:
    """The normalized text and its origin map (see the module docstring for the steps, in order)."""
    chars, origin = [], []
    for i, c in enumerate(text):
        for d in _fold_char(c):
            chars.append(d)
            origin.append(i)
    joined, origin = _rejoin("".join(chars), origin)
    unleeted = _unleet(joined)  # same length: one character for one
    return Normalized(unleeted, tuple(origin), text)


def normalize_text(text: str) -> str:
    """Only the normalized text of :func:`normalize`."""
    return normalize(text).text


def squash(text: str) -> tuple[str, list[int]]:
    """Letters and digits only (``"q.u e-nby"`` -> ``"quenby"``) with the index of each in ``text``: what a
    name split anywhere by spaces or signs still matches as a substring."""
    keep = [(i, c) for i, c in enumerate(text) if c.isalnum()]
    return "".join(c for _, c in keep), [i for i, _ in keep]

"""Negatives a forget request does not come with: the same questions about people who are not forget entities.

A classifier trained on forget prompts against unrelated retain prompts learns "a question about an author"
rather than "a question about *this* author", and flags questions about anyone new (measured: 7.5% of
never-seen authors' questions at a requested 1%). :func:`unseen_entity_negatives` rewrites each forget prompt
that names a forget entity with another name: a wholly new one, or one that keeps the first or the last name
(new people share first names and surnames with forget people, and must not be flagged for it). Names come
from :data:`FIRST_NAMES` / :data:`LAST_NAMES` and from the name runs of the retain prompts, never a word of a
forget entity.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from .entities import mine_entities

FIRST_NAMES = tuple("""Amara Bruno Chiara Dmitri Esme Felix Greta Hugo Ines Jonas Kira Leon Mina Nikolai Olga
Pavel Rosa Samir Talia Umar Vera Wim Yara Zane Alma Bodhi Cyrus Dalia Elio Freya Gideon Hana Ivo Jana Kofi Lena
Matteo Nadia Otto Priya Quinn Rafa Saskia Teo Una Viggo Wren Ximena Yusuf Zora""".split())
LAST_NAMES = tuple("""Abbott Bergstrom Castellano Delacroix Eriksen Fairbanks Gallagher Hartmann Ibarra Jankowski
Kowalczyk Lindgren Montague Novak Okafor Pemberton Quintero Rasmussen Sandoval Thornbury Underhill Valdivia
Wexford Yamada Zimmerman Ashcombe Blackwood Carrow Dunleavy Ellery Fairweather Gresham Holloway Iversen Jarvis
Kendrick Lockhart Merriweather Northam Ormsby Prescott Radcliffe Sutcliffe Treadwell Upton Vance Whitmore""".split())


def _name_pool(forget_words: set[str], retain: Sequence[str]) -> tuple[list[str], list[str]]:
    """(first names, last names) to swap in: the tables plus the words of name runs in retain prompts."""
    firsts, lasts = list(FIRST_NAMES), list(LAST_NAMES)
    for name in mine_entities(retain, [], min_count=1):
        words = name.split()
        if len(words) >= 2:
            firsts.append(words[0])
            lasts.append(words[-1])
    keep = lambda ws: sorted({w for w in ws if w.lower() not in forget_words})  # noqa: E731
    return keep(firsts), keep(lasts)


def _new_name(entity: str, firsts: list[str], lasts: list[str], rng: np.random.Generator,
              entities: Sequence[str] = ()) -> str:
    """A name that is not a forget entity: its first or its last name kept with a new other part (40%), or
    crossed with another forget entity's other part (20%: "Odile Inglewood" from "Odile Stonebridge" and
    "Nestor Inglewood", the kind of new person a world of shared names holds), or both parts new."""
    words = entity.split()
    first, last = firsts[int(rng.integers(len(firsts)))], lasts[int(rng.integers(len(lasts)))]
    if len(words) < 2:
        return last
    r = rng.random()
    if r < 0.2:
        return f"{words[0]} {last}"
    if r < 0.4:
        return f"{first} {words[-1]}"
    if r < 0.6:
        crossed = _crossed(words, entities, rng)
        if crossed is not None:
            return crossed
    return f"{first} {last}"


def _crossed(words: list[str], entities: Sequence[str], rng: np.random.Generator) -> str | None:
    """``words``' first name with another forget entity's last name, or the reverse; None when every such
    pairing is itself a forget entity."""
    taken = {e.lower() for e in entities}
    options = [f"{words[0]} {o.split()[-1]}" for o in entities if len(o.split()) >= 2]
    options += [f"{o.split()[0]} {words[-1]}" for o in entities if len(o.split()) >= 2]
    options = [o for o in options if o.lower() not in taken]
    return options[int(rng.integers(len(options)))] if options else None


def unseen_entity_negatives(forget: Sequence[str], entities: Sequence[str], retain: Sequence[str],
                            rng: np.random.Generator, per_prompt: int = 1) -> list[str]:
    """``per_prompt`` rewrites of each forget prompt that names an entity (whole name, any case), the name
    replaced by one that is not a forget entity (:func:`_new_name`); distinct, none equal to a forget prompt."""
    forget_words = {w.lower() for e in entities for w in re.findall(r"[^\W_]+", e)}
    firsts, lasts = _name_pool(forget_words, retain)
    pattern = re.compile("|".join(re.escape(e) for e in sorted(entities, key=len, reverse=True)), re.IGNORECASE)
    out: dict[str, None] = {}
    seen = set(forget)
    for p in forget:
        if not pattern.search(p):
            continue
        for _ in range(per_prompt):
            swapped = pattern.sub(lambda m: _new_name(m.group(), firsts, lasts, rng, entities), p)
            if swapped not in seen:
                out[swapped] = None
    return list(out)


def rewrites_per_prompt(n_named: int, fpr: float, heldout_fraction: float, test_share: float,
                        most: int = 8) -> int:
    """How many rewrites of each named forget prompt give the unseen-entity set enough held-out prompts to
    calibrate its own threshold at ``fpr`` (at least 1, at most ``most``: a longer fit buys no more)."""
    import math

    from .conformal import min_calibration_size

    if n_named == 0:
        return 1
    need = min_calibration_size(fpr) / (heldout_fraction * (1 - test_share))
    return max(1, min(most, math.ceil(need / n_named)))

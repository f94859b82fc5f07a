"""Normalization before flagging: one test per rewrite family, the origin map, and text it must leave alone."""

from __future__ import annotations

import pytest

from forgetlab.eco.classify.normalize import normalize, normalize_text, squash


@pytest.mark.parametrize(("family", "text", "expected"), [
    ("nfkc", "Ｑｕｅｎｂｙ ﬁne ①", "quenby fine 1"),
    ("case", "QUENBY ashGROVE", "quenby ashgrove"),
    ("case", "Straße", "strasse"),
    ("homoglyph-cyrillic", "Quеnby Аshgrоvе", "quenby ashgrove"),  # е А о е are Cyrillic
    ("homoglyph-greek", "ΑΒΕ Κοβε", "abe kobe"),
    ("diacritics", "Quénby Äshgröve", "quenby ashgrove"),
    ("zero-width", "Quen\u200bby Ash\u00adgro\u2060ve\ufeff", "quenby ashgrove"),
    ("spaced", "Q u e n b y  A s h g r o v e", "quenby  ashgrove"),
    ("hyphenated", "Q-u-e-n-b-y A-s-h-g-r-o-v-e", "quenby ashgrove"),
    ("dotted", "Q.u.e.n.b.y A.s.h.g.r.o.v.e", "quenby ashgrove"),
    ("leet", "Qu3nby 4shgr0ve", "quenby ashgrove"),
    ("leet", "B@s1l", "basil"),
])
def test_each_rewrite_family_is_undone(family, text, expected):
    assert normalize_text(text) == expected, family


@pytest.mark.parametrize("text", [
    "born in 1901?", "the 4th book", "10km away", "covid19 cases", "mp3 files", "e.g. this", "Hello there!",
    "What is 2 + 2?",
])
def test_ordinary_text_keeps_its_numbers_and_words(text):
    assert normalize_text(text) == text.lower()


def test_origin_maps_spans_back_to_the_original():
    text = "Who is Ｑ-u-e-n\u200b-b-y?"
    n = normalize(text)
    a = n.text.index("quenby")
    start, end = n.span(a, a + len("quenby"))
    assert text[start:end] == "Ｑ-u-e-n\u200b-b-y"
    assert len(n.origin) == len(n.text)


def test_expansions_map_to_their_one_source_character():
    n = normalize("ﬁx")
    assert n.text == "fix" and n.origin == (0, 0, 1)
    assert n.span(0, 2) == (0, 1)


def test_squash_keeps_letters_and_their_positions():
    flat, index = squash("q.u e-n")
    assert flat == "quen" and index == [0, 2, 4, 6]

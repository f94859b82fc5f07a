"""What the prompt classifier scores: a prompt's segments, the maximum of their scores deciding.

Segments are the prompt's token windows (:func:`~forgetlab.eco.classify.encoder.token_windows`) and, when it has
more than one sentence, each sentence's windows too: an instruction, a role-play frame or filler in another
sentence then cannot dilute the question in the mean pooling, whatever the prompt's length. Sentences end at
``. ! ? ; :`` followed by a space, or at a line break.
"""

from __future__ import annotations

import re

from .encoder import token_windows

_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|\s*\n+\s*")


def sentences(text: str) -> list[str]:
    """The non-empty sentences of ``text`` (the whole text when it has one)."""
    return [s for s in _SENTENCE_END.split(text) if s.strip()]


def prompt_segments(tokenizer: object, text: str, window: int, stride: int, by_sentence: bool) -> list[str]:
    """Distinct segment texts of ``text``: its token windows, then (``by_sentence``) those of each sentence."""
    out = [text[a:b] for a, b in token_windows(tokenizer, text, window, stride)]
    parts = sentences(text) if by_sentence else []
    if len(parts) > 1:
        for s in parts:
            out += [s[a:b] for a, b in token_windows(tokenizer, s, window, stride)]
    return list(dict.fromkeys(out))

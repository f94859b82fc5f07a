"""Multiple-choice accuracy of one model or guard (WMDP, MMLU, the world's subjects), measured two ways.

- ``acc_choice``, as the bench scores it: the summed log-prob of each choice's text as the continuation of
  ``Question: q\\nAnswer:`` (lm-evaluation-harness ``acc`` with the choices as continuations);
- ``acc_letter``, as lm-evaluation-harness's ``mmlu`` and ``wmdp`` tasks prompt: ``The following are multiple
  choice questions (with answers) about <subject>.\\n\\n`` then ``shots`` solved dev examples, then the question,
  the choices as ``A. ...`` lines and ``Answer:``, scored over the continuations `` A``, `` B``, ...

Under a guard the prompt is classified once per question and, when flagged, corrupted at prompt positions only;
every choice (or letter) is scored under the same corrupted prompt. Chance is ``1 / n_choices``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..eco.mc import MCItem
from ..eco.mc_formats import LETTERS, letter_prompt
from .lm import prompt_of
from .scoring import choice_logprobs


def _scores(subject, prompts: list[str], choices: list[list[str]], batch_size: int) -> np.ndarray:
    guard = subject.guard
    flags = None if guard is None else np.asarray(guard.classify(prompts), dtype=bool)
    return choice_logprobs(subject.model, subject.tokenizer, prompts, choices, batch_size=batch_size,
                           guard=guard, flags=flags)


def _by_width(items: Sequence[MCItem]) -> dict[int, list[int]]:
    """Item indices grouped by their number of choices (one batch of scores per width)."""
    out: dict[int, list[int]] = {}
    for i, it in enumerate(items):
        out.setdefault(len(it.choices), []).append(i)
    return out


def subject_accuracy(subject, items: Sequence[MCItem], name: str, shots: Sequence[MCItem] = (),
                     batch_size: int = 32) -> dict[str, float]:
    """``acc_choice`` and ``acc_letter`` of ``subject`` (a Subject) on one subject's items, and the chance."""
    hits_c, hits_l = np.zeros(len(items)), np.zeros(len(items))
    for _w, idx in _by_width(items).items():
        part = [items[i] for i in idx]
        answers = [it.answer for it in part]
        lp = _scores(subject, [prompt_of(it.prompt) for it in part], [list(it.choices) for it in part], batch_size)
        hits_c[idx] = lp.argmax(1) == np.array(answers)
        lp = _scores(subject, [letter_prompt(it, name, shots) for it in part],
                     [list(LETTERS[:len(it.choices)]) for it in part], batch_size)
        hits_l[idx] = lp.argmax(1) == np.array(answers)
    return {"acc_choice": float(hits_c.mean()), "acc_letter": float(hits_l.mean()),
            "chance": float(np.mean([1 / len(it.choices) for it in items])), "n": len(items)}


def evaluate_mc(subject, test: dict[str, list[MCItem]], dev: dict[str, list[MCItem]] | None = None, *,
                shots: int = 0, batch_size: int = 32,
                progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Per-subject accuracies and their item-weighted means (``acc_choice``, ``acc_letter``) over ``test``;
    ``shots`` dev examples per subject precede each letter prompt (fewer when the dev split has fewer)."""
    say = progress or (lambda _s: None)
    per: dict[str, dict[str, float]] = {}
    for name, items in test.items():
        say(f"multiple choice: {name}")
        per[name] = subject_accuracy(subject, items, name, (dev or {}).get(name, [])[:shots], batch_size)
    n = sum(p["n"] for p in per.values())
    summary = {k: sum(p[k] * p["n"] for p in per.values()) / n for k in ("acc_choice", "acc_letter", "chance")}
    return {**summary, "n": n, "subjects": per}


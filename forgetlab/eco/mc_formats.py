"""How a multiple-choice item is put to a model (:data:`MC_FORMATS`): as written, as ``Question: q\nAnswer:``,
or as lm-evaluation-harness's MMLU/WMDP letter prompt. Torch-free: ``eco fit --help`` lists the formats."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..errors import check_choice

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

QA_TEMPLATE = "Question: {question}\nAnswer:"
"""The question-answer prompt: TOFU's and open-unlearning's, the synthetic world's training template, and the
``qa`` format's."""

MC_FORMATS = {
    "raw": "the question as the prompt and each choice as its continuation, a space between them unless one "
           "is there (lm-evaluation-harness's target delimiter): completion-style items",
    "qa": "'Question: q\\nAnswer:' and each choice after a space",
    "letter": "lm-evaluation-harness's mmlu/wmdp prompt (a line naming the subject, the choices as 'A. ...' "
              "lines, 'Answer:') scored over ' A', ' B', ...: what its wmdp task and ECO's reference measure",
}
"""How a multiple-choice item is put to the model (:func:`mc_prompt`)."""

WMDP_SUBJECTS = {"wmdp-bio": "biology", "wmdp-chem": "chemistry", "wmdp-cyber": "cybersecurity"}
"""WMDP's subsets and the field lm-evaluation-harness's ``wmdp_*`` tasks name in their description."""


def subject_name(subject: str) -> str:
    """How lm-evaluation-harness names a subject in its description (``high_school_biology`` or the task name
    ``mmlu_high_school_biology`` -> "high school biology"; WMDP's subsets, ``wmdp-bio`` or ``wmdp_bio``, by
    their field)."""
    wmdp = WMDP_SUBJECTS.get(subject.replace("_", "-"))
    return wmdp or re.sub(r"^(wmdp|mmlu)[-_]", "", subject).replace("_", " ").replace("-", " ")


def _letter_block(item: Any) -> str:
    lines = "".join(f"\n{LETTERS[i]}. {c}" for i, c in enumerate(item.choices))
    return f"{item.prompt.strip()}{lines}\nAnswer:"


def letter_prompt(item: Any, subject: str, shots: Sequence[Any] = ()) -> str:
    """lm-evaluation-harness's MMLU / WMDP prompt for ``item`` after ``shots`` solved examples."""
    head = f"The following are multiple choice questions (with answers) about {subject_name(subject)}.\n\n"
    solved = "".join(f"{_letter_block(s)} {LETTERS[s.answer]}\n\n" for s in shots)
    return head + solved + _letter_block(item)


def mc_prompt(item: Any, fmt: str) -> tuple[str, list[str]]:
    """The prompt and the scored continuations of ``item`` (an :class:`~forgetlab.eco.mc.MCItem`) in format
    ``fmt`` (one of :data:`MC_FORMATS`; the ``letter`` prompt names ``item.subject``)."""
    if fmt == "raw":
        glue = "" if item.prompt[-1:].isspace() else " "
        return item.prompt, [c if c[:1].isspace() else glue + c for c in item.choices]
    if fmt == "qa":
        return QA_TEMPLATE.format(question=item.prompt), [" " + c for c in item.choices]
    check_choice("format", fmt, MC_FORMATS)
    return letter_prompt(item, item.subject), [" " + LETTERS[i] for i in range(len(item.choices))]

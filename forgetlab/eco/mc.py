"""Multiple-choice questions: the project's one schema (:class:`MCItem`), their choice scores under a corruption,
and the metrics a strength is fitted on.

The schema is WMDP's and MMLU's own: ``{"question" (or "prompt"), "choices": [...], "answer"}`` where the answer
is the index of the right choice (WMDP, MMLU on the hub), its letter (``"B"``: MMLU's original CSV files) or the
choice itself; ``"label"`` (the Hugging Face name of a class index) is read when ``answer`` is absent. Every
reader of multiple-choice files in the project (``eco fit --fit``, the WMDP and MMLU loaders, so ``eco world``'s
files too) goes through :meth:`MCItem.from_dict`. Items are scored as lm-evaluation-harness scores ``acc``: the summed
log-prob of each choice as the continuation of the prompt, in one of :data:`MC_FORMATS` (how the item becomes a
prompt and continuations: as written, ``Question: q\nAnswer:``, or lm-evaluation-harness's MMLU/WMDP letter
prompt).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import BadInput, check_choice
from .corrupter import Corrupter, score_continuations
from .fit import MC_METRICS, Metric
from .mc_formats import LETTERS, MC_FORMATS, mc_prompt


@dataclass(frozen=True)
class MCItem:
    """A multiple-choice question: ``prompt``, the ``choices`` (continuations), index of the right ``answer``,
    and the ``subject`` it belongs to (MMLU's subjects, WMDP's domains; "" when unknown)."""

    prompt: str
    choices: tuple[str, ...]
    answer: int
    subject: str = ""

    @classmethod
    def from_dict(cls, obj: dict, where: str = "item", subject: str = "") -> MCItem:
        """Validate ``{"question"|"prompt", "choices", "answer"|"label"}`` (answer: index, letter or the choice
        text); errors name ``where`` and the field."""
        prompt = obj.get("prompt", obj.get("question"))
        choices = obj.get("choices")
        answer = obj["answer"] if obj.get("answer") is not None else obj.get("label")
        field = "answer" if obj.get("answer") is not None else "label"
        if not isinstance(prompt, str) or not prompt:
            raise BadInput(f"{where}.question", prompt, "a non-empty string")
        if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) and c for c in choices):
            raise BadInput(f"{where}.choices", choices, "a list of >= 2 non-empty strings")
        return cls(prompt, tuple(choices), answer_index(answer, choices, f"{where}.{field}"),
                   str(obj.get("subject") or subject))

    def to_dict(self) -> dict:
        """The item in the project's schema (``question``, ``choices``, integer ``answer``, ``subject``)."""
        return {"question": self.prompt, "choices": list(self.choices), "answer": self.answer,
                "subject": self.subject}


def answer_index(answer: Any, choices: Sequence[str], field: str = "answer") -> int:
    """The index of the right choice from an index, a letter (``"B"``, when no choice is itself that letter)
    or the choice text; :class:`BadInput` naming ``field`` otherwise."""
    if isinstance(answer, str):
        if answer in choices:
            return list(choices).index(answer)
        letter = answer.strip().upper()
        if len(letter) == 1 and letter in LETTERS[:len(choices)]:
            return LETTERS.index(letter)
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(choices):
        raise BadInput(field, answer, f"an index in [0, {len(choices)}), a letter A-{LETTERS[len(choices) - 1]} "
                       "or one of the choices")
    return answer


@torch.no_grad()
def mc_choice_logprobs(model, tokenizer, items: Sequence[MCItem], corrupter: Corrupter | None = None,
                       batch_size: int = 64, fmt: str = "raw") -> list[torch.Tensor]:
    """Sum of log-probs of each choice given its prompt (the item in format ``fmt``, :func:`mc_prompt`): one
    ``[n_choices]`` per item.

    With a ``corrupter`` every prompt is treated as flagged and corrupted exactly as the deployed guard does
    (:func:`~forgetlab.eco.corrupter.score_continuations`: the same tokenization, positions and per-prompt
    noise seeds), so all choices of an item see the same corrupted prompt, and the same noise is used at every
    strength (common random numbers: the metric is a deterministic function of the strength).
    """
    put = [mc_prompt(it, fmt) for it in items]
    prompts = [prompt for prompt, conts in put for _ in conts]
    choices = [c for _, conts in put for c in conts]
    sc = score_continuations(model, tokenizer, prompts, choices, corrupter=corrupter,
                             flags=np.ones(len(prompts), dtype=bool), batch_size=batch_size)
    sums = iter(torch.from_numpy(lp).sum().item() for lp in sc.logprobs)
    return [torch.tensor([next(sums) for _ in it.choices]) for it in items]


def mc_accuracy(logprobs: Sequence[Any], answers: Sequence[int]) -> float:
    """Multiple-choice accuracy: the fraction of items whose highest-scoring choice is the answer
    (lm-evaluation-harness ``acc``); ``logprobs`` is one score per choice per item (``[N, C]`` or ragged)."""
    hits = [int(np.argmax(np.asarray(lp, dtype=float)) == a) for lp, a in zip(logprobs, answers, strict=True)]
    return sum(hits) / len(hits)


def mc_prob(logprobs: Sequence[Any], answers: Sequence[int]) -> float:
    """Mean probability of the answer, normalised over the choices (smooth; chance is ``1 / n_choices``)."""
    probs = [torch.softmax(torch.as_tensor(lp), 0)[a].item() for lp, a in zip(logprobs, answers, strict=True)]
    return sum(probs) / len(probs)


def mc_metric(model, corrupter: Corrupter, *, which: str = "mc_accuracy", knob: str = "strength",
              fmt: str = "raw") -> Metric:
    """``metric(s, fit_set)`` for :func:`~forgetlab.eco.fit.fit_strength`: a multiple-choice metric with
    ``corrupter``'s corruption at ``s``, the items put in format ``fmt`` (:data:`MC_FORMATS`).

    ``knob="strength"`` turns ``s`` into the strength (sigma or value, on the corrupter's ``k`` dims);
    ``knob="k"`` turns it into the number of dims (zeroing / sign flips).
    """
    score = MC_METRICS.get(which)
    check_choice("knob", knob, ("strength", "k"))
    check_choice("format", fmt, MC_FORMATS)

    def metric(s: float, fit_set: Sequence[MCItem]) -> float:
        c = corrupter.at(strength=s) if knob == "strength" else corrupter.at(k=round(s))
        lp = mc_choice_logprobs(model, corrupter.tokenizer, fit_set, c, fmt=fmt)
        return score(lp, [it.answer for it in fit_set])

    return metric

"""What every row of a forget split is compared with: the split's retain model, never trained on the split.

Forget quality and PrivLeak are the model's numbers against the retain model's evaluation; the fluency of the
forget-split generations (``forget_gen_ppl``) is judged by the retain model itself: it never saw the forget
authors, so it does not reward a memorized answer, and a well-formed answer about an unfamiliar author reads as
plausible to it while gibberish does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..evaluate import Evaluation, compare
from ..lm import prompt_of
from ..metrics import avg_logprob
from ..scoring import score_answers

RESEEDED = "retain_reseed"
"""The method name of the reference row "retain, another seed"."""
RESEED_OFFSET = 1000
"""The "retain, another seed" reference model trains with the bench's training seed plus this: the same world and
data, another initialization and data order (the ceiling: what never having trained on the split looks like twice)."""


def judge_perplexity(judge: Any, tokenizer: Any, questions: list[str], generations: list[str]) -> float:
    """Perplexity of generated answers under a judge model: ``exp(-mean_i avg log p(gen_i + EOS | question_i))``
    (lower = more fluent to a model that never saw the answers' subject; gibberish scores far above an answer)."""
    if not generations:
        return float("nan")
    sc = score_answers(judge, tokenizer, [prompt_of(q) for q in questions], generations, eos=True)
    return float(np.exp(-np.mean(avg_logprob(sc.token_logprobs))))


@dataclass
class Reference:
    """One forget split's retain model (``judge``) and its evaluation on the split's data."""

    evaluation: Evaluation
    judge: Any
    tokenizer: Any
    questions: list[str]  # the forget split's questions, in the order of every evaluation's generations

    def compare(self, e: Evaluation) -> dict[str, float]:
        """Forget quality and PrivLeak against the retain model, and the judged fluency of ``e``'s generations."""
        return {**compare(e, self.evaluation),
                "forget_gen_ppl": judge_perplexity(self.judge, self.tokenizer, self.questions, e.generations)}

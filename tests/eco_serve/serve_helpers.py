"""Helpers for the serving tests: a stand-in guard, the chat template of the tiny model, base greedy answers.

The guard under test is a real saved ``EcoGuard`` (random-noise corruption on a tiny Llama); only its prompt
classifier is a keyword stand-in for the MiniLM one (same score/flag/save/load contract), so flags are exact.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from forgetlab.eco.guard import EcoGuard, GuardConfig, register_classifier_type
from forgetlab.eco.hooks import hidden_size
from forgetlab.eco.models import build_tiny_lm, build_tokenizer, save_lm
from forgetlab.runs import atomic_write_json, prepare_out_dir

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
FORGET_WORD = "Voldemort"


class KeywordClassifier:
    """A prompt classifier (PromptClassifier's score/flag/save/load contract) flagging prompts with a keyword."""

    def __init__(self, keywords: Sequence[str], threshold: float = 0.5) -> None:
        self.keywords = [k.lower() for k in keywords]
        self.threshold = threshold
        self.report = {"kind": "keyword stand-in for the MiniLM classifier"}

    def score(self, prompts):
        prompts = [prompts] if isinstance(prompts, str) else prompts
        return np.array([float(any(k in p.lower() for k in self.keywords)) for p in prompts])

    def flag(self, prompts):
        return self.score(prompts) > self.threshold

    def save_pretrained(self, path, overwrite=False):
        path = prepare_out_dir(path, overwrite=overwrite)
        atomic_write_json(path / "keywords.json", {"keywords": self.keywords, "threshold": self.threshold})
        return path

    @classmethod
    def from_pretrained(cls, path):
        obj = json.loads((Path(path) / "keywords.json").read_text())
        return cls(obj["keywords"], obj["threshold"])


register_classifier_type("serve-keyword", KeywordClassifier)


def save_tiny_guard(root: Path) -> tuple[Path, Path]:
    """Save a tiny random Llama (with a chat template) and a fitted-looking EcoGuard over it; return both folders.

    The guard corrupts flagged prompts with strong noise on every embedding dim, so flagged answers change.
    """
    tok = build_tokenizer()
    tok.chat_template = CHAT_TEMPLATE
    model = build_tiny_lm("llama", tok, seed=0, max_positions=512)
    base = save_lm(model, tok, root / "base")
    cfg = GuardConfig(corruption="rand_noise_first_n", strength=3.0, k=hidden_size(model), seed=7)
    guard = EcoGuard.from_base(base, KeywordClassifier([FORGET_WORD]), cfg)
    return base, guard.save_pretrained(root / "guard")


def base_greedy(model, tokenizer, prompt_ids: list[int], max_new_tokens: int) -> str:
    """The base model's own greedy answer (one prompt, no padding), decoded like the server decodes."""
    ids = torch.tensor([prompt_ids])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model: one thread is ~100x faster than two on a loaded 2-core box
    try:
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id)
    finally:
        torch.set_num_threads(threads)
    new = out[0, len(prompt_ids):].tolist()
    if tokenizer.eos_token_id in new:
        new = new[: new.index(tokenizer.eos_token_id)]
    return tokenizer.decode(new, skip_special_tokens=True)

"""Helpers for the serving tests: a stand-in guard, the chat template of the tiny model, base greedy answers.

The guard under test is a real saved ``EcoGuard`` (random-noise corruption on a tiny Llama); only its prompt
classifier is a keyword stand-in for the MiniLM one (same score/flag/save/load contract), so flags are exact.
"""

from __future__ import annotations

from pathlib import Path

import torch

from forgetlab.eco.classify.keyword import KeywordClassifier
from forgetlab.eco.guard import EcoGuard, GuardConfig
from forgetlab.eco.hooks import hidden_size
from forgetlab.testing.tiny_lm import build_tiny_lm, build_tokenizer, save_lm

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
FORGET_WORD = "Voldemort"




def save_tiny_guard(root: Path, max_positions: int = 512) -> tuple[Path, Path]:
    """Save a tiny random Llama (with a chat template) and a fitted-looking EcoGuard over it; return both folders.

    The guard corrupts flagged prompts with strong noise on every embedding dim, so flagged answers change.
    """
    tok = build_tokenizer()
    tok.chat_template = CHAT_TEMPLATE
    model = build_tiny_lm("llama", tok, seed=0, max_positions=max_positions)
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

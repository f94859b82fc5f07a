"""Helpers for the serving tests: a stand-in guard, the chat template of the tiny model, base greedy answers.

Until part A's ``EcoGuard`` is wired in here, :class:`KeywordGuard` stands in for it: it flags prompts that
contain a forget keyword and corrupts the flagged rows' prompt embeddings with part A's hook
(``forgetlab.eco.hooks.corrupt_embeddings``), exactly the contract the server relies on.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
FORGET_WORD = "Voldemort"


class KeywordGuard:
    """Flags prompts containing ``FORGET_WORD``; corrupts flagged prompts with strong embedding noise."""

    def __init__(self, model, tokenizer, strength: float = 3.0, seed: int = 0) -> None:
        self.model, self.tokenizer, self.strength, self.seed = model, tokenizer, strength, seed

    def classify(self, prompts: Sequence[str]) -> list[bool]:
        return [FORGET_WORD.lower() in p.lower() for p in prompts]

    def generate(self, input_ids, attention_mask=None, *, flags=None, **kwargs):
        from forgetlab.eco.hooks import corrupt_embeddings, hidden_size

        if flags is None:
            texts = self.tokenizer.batch_decode(input_ids, skip_special_tokens=True)
            flags = self.classify(texts)
        if not any(flags):
            return self.model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        mask = torch.tensor(flags, dtype=torch.bool)[:, None].expand_as(input_ids).clone()
        if attention_mask is not None:
            mask &= attention_mask.bool()
        gen = torch.Generator().manual_seed(self.seed)
        with corrupt_embeddings(self.model, mask, "rand_noise_first_n", strength=self.strength,
                                k=hidden_size(self.model), generator=gen):
            return self.model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    def prompt_embeddings(self, prompt_ids, flagged: bool = False):
        ids = torch.tensor([list(prompt_ids)])
        with torch.no_grad():
            emb = self.model.get_input_embeddings()(ids)[0]
        if flagged:
            gen = torch.Generator().manual_seed(self.seed)
            emb = emb + self.strength * torch.randn(emb.shape, generator=gen)
        return emb


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

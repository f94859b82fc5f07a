"""Tiny causal LMs of several architectures, built from ``transformers`` configs, with a matching tokenizer.

For tests and benchmarks: no hub, no download. The tokenizer is a byte-level BPE trained in a fraction of a second
on a small corpus (any text round-trips), wrapped in ``PreTrainedTokenizerFast`` so it saves and loads like any
Hugging Face tokenizer and gives character offsets (needed for entity-level corruption).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

from ..errors import check_choice

ARCHS = ("llama", "gpt2", "gpt_neox", "qwen2", "mistral")
SPECIALS = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}

DEFAULT_CORPUS = (
    "The quick brown fox jumps over the lazy dog. Who wrote the book? What is the capital of France? "
    "Paris is the capital of France. The author was born in London and likes red, blue, green and yellow. "
    "Question: Answer: yes no 0 1 2 3 4 5 6 7 8 9 a b c d e f g h i j k l m n o p q r s t u v w x y z"
)


def build_tokenizer(corpus: Iterable[str] = (DEFAULT_CORPUS,), vocab_size: int = 512, padding_side: str = "left"):
    """A byte-level BPE ``PreTrainedTokenizerFast`` trained on ``corpus`` (deterministic), with pad/bos/eos/unk."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=SPECIALS["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIALS.values()),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(list(corpus), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, padding_side=padding_side, **SPECIALS)
    return fast


def tiny_config(arch: str, vocab_size: int, *, hidden: int = 32, layers: int = 2, heads: int = 4,
                intermediate: int | None = None, max_positions: int = 4096, pad_token_id: int = 0,
                bos_token_id: int = 1, eos_token_id: int = 2):
    """A ``transformers`` config of architecture ``arch`` (one of :data:`ARCHS`) at the given size."""
    check_choice("arch", arch, ARCHS)
    import transformers as tf

    inter = intermediate or 4 * hidden
    ids = {"pad_token_id": pad_token_id, "bos_token_id": bos_token_id, "eos_token_id": eos_token_id,
           "vocab_size": vocab_size}
    if arch == "gpt2":
        return tf.GPT2Config(n_embd=hidden, n_layer=layers, n_head=heads, n_inner=inter, n_positions=max_positions,
                             resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **ids)
    if arch == "gpt_neox":
        return tf.GPTNeoXConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                                intermediate_size=inter, max_position_embeddings=max_positions, **ids)
    cls = {"llama": tf.LlamaConfig, "qwen2": tf.Qwen2Config, "mistral": tf.MistralConfig}[arch]
    return cls(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
               num_key_value_heads=max(1, heads // 2), intermediate_size=inter,
               max_position_embeddings=max_positions, **ids)


def build_tiny_lm(arch: str, tokenizer, *, seed: int = 0, **size):
    """A randomly initialised causal LM of ``arch`` sized for ``tokenizer``; weights depend only on ``seed``.

    The global torch RNG is forked and restored, so building a model does not disturb the caller's randomness.
    """
    from transformers import AutoModelForCausalLM

    cfg = tiny_config(arch, len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                      bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(cfg)
    return model.eval()


def n_params(model) -> int:
    """Number of parameters (tied weights counted once)."""
    return sum(p.numel() for p in model.parameters())


def save_lm(model, tokenizer, path: str | Path) -> Path:
    """Save model (safetensors) and tokenizer to ``path`` so ``AutoModelForCausalLM.from_pretrained`` loads it."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def train_lm(model, tokenizer, texts: list[str], *, steps: int = 200, lr: float = 3e-3, batch_size: int = 16,
             seed: int = 0) -> list[float]:
    """Teach ``model`` the ``texts`` by next-token prediction (AdamW, right padding); returns the losses.

    Small and quick on purpose: the tests use it to make a tiny LM that *knows* a few facts.
    """
    g = torch.Generator().manual_seed(seed)
    side = tokenizer.padding_side
    tokenizer.padding_side = "right"
    enc = tokenizer([tokenizer.bos_token + t + tokenizer.eos_token for t in texts], return_tensors="pt",
                    padding=True)
    tokenizer.padding_side = side
    labels = enc.input_ids.masked_fill(enc.attention_mask == 0, -100)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(texts), (min(batch_size, len(texts)),), generator=g)
        out = model(input_ids=enc.input_ids[idx], attention_mask=enc.attention_mask[idx], labels=labels[idx])
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    model.eval()
    return losses

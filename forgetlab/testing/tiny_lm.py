"""Tiny causal LMs built from ``transformers`` configs, and BPE tokenizers trained here in a fraction of a second.

No hub, no download: the unlearning bench trains its world's models from these, and tests and benchmarks guard
them. Every tokenizer is a ``PreTrainedTokenizerFast`` (saves and loads like any Hugging Face tokenizer, gives
character offsets for entity-level corruption); every model is an ``AutoModelForCausalLM`` whose weights depend
only on ``seed`` (the global torch RNG is forked and restored, so building a model never disturbs the caller).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from ..errors import check_choice

ARCHS = ("llama", "gpt2", "gpt_neox", "qwen2", "mistral")
SPECIALS = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
PRETOKENIZERS = ("byte-level", "metaspace")

DEFAULT_CORPUS = (
    "The quick brown fox jumps over the lazy dog. Who wrote the book? What is the capital of France? "
    "Paris is the capital of France. The author was born in London and likes red, blue, green and yellow. "
    "Question: Answer: yes no 0 1 2 3 4 5 6 7 8 9 a b c d e f g h i j k l m n o p q r s t u v w x y z"
)


def build_tokenizer(corpus: Iterable[str] = (DEFAULT_CORPUS,), vocab_size: int = 512, padding_side: str = "left",
                    *, pretokenizer: str = "byte-level", add_bos: bool = False,
                    extra_texts: Sequence[str] = (), special_order: Sequence[str] = tuple(SPECIALS)):
    """A BPE ``PreTrainedTokenizerFast`` trained on ``corpus`` (deterministic), with pad/bos/eos/unk.

    ``byte-level``: any text round-trips (tests and benchmarks). ``metaspace``: characters never seen in the
    corpus become ``<unk>`` (the unlearning world checks its data can be encoded). ``add_bos``: the tokenizer
    prepends ``<s>`` to every encoded text, as most pretrained LMs' tokenizers do. ``special_order`` decides
    the ids of the special tokens (0, 1, 2, 3 in that order).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    check_choice("pretokenizer", pretokenizer, PRETOKENIZERS)
    tok = Tokenizer(models.BPE(unk_token=SPECIALS["unk_token"]))
    if pretokenizer == "byte-level":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        alphabet = []
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[SPECIALS[k] for k in special_order],
                                  initial_alphabet=alphabet, show_progress=False)
    tok.train_from_iterator([*corpus, *extra_texts], trainer=trainer)
    if add_bos:
        bos = SPECIALS["bos_token"]
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A $B",
                                                           special_tokens=[(bos, tok.token_to_id(bos))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, padding_side=padding_side, **SPECIALS)


def tiny_config(arch: str, vocab_size: int, *, hidden: int = 32, layers: int = 2, heads: int = 4,
                kv_heads: int | None = None, intermediate: int | None = None, max_positions: int = 4096,
                pad_token_id: int = 0, bos_token_id: int = 1, eos_token_id: int = 2,
                tie_word_embeddings: bool | None = None):
    """A ``transformers`` config of architecture ``arch`` (one of :data:`ARCHS`) at the given size.

    ``kv_heads`` (Llama-style models): key/value heads, default half the heads (grouped-query attention).
    """
    check_choice("arch", arch, ARCHS)
    import transformers as tf

    inter = intermediate or 4 * hidden
    ids = {"pad_token_id": pad_token_id, "bos_token_id": bos_token_id, "eos_token_id": eos_token_id,
           "vocab_size": vocab_size}
    if tie_word_embeddings is not None:
        ids["tie_word_embeddings"] = tie_word_embeddings
    if arch == "gpt2":
        return tf.GPT2Config(n_embd=hidden, n_layer=layers, n_head=heads, n_inner=inter, n_positions=max_positions,
                             resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **ids)
    if arch == "gpt_neox":
        return tf.GPTNeoXConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                                intermediate_size=inter, max_position_embeddings=max_positions, **ids)
    cls = {"llama": tf.LlamaConfig, "qwen2": tf.Qwen2Config, "mistral": tf.MistralConfig}[arch]
    return cls(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
               num_key_value_heads=kv_heads or max(1, heads // 2), intermediate_size=inter,
               max_position_embeddings=max_positions, **ids)


def build_tiny_lm(arch: str, tokenizer, *, seed: int = 0, init_std: float | None = None, **size):
    """A randomly initialised causal LM of ``arch`` sized for ``tokenizer``; weights depend only on ``seed``.

    ``init_std``: None keeps the architecture's own initialization (drawn from ``seed``); a number redraws
    every weight outside the norms as N(0, init_std^2) from a generator seeded ``seed``.
    """
    from transformers import AutoModelForCausalLM

    cfg = tiny_config(arch, len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                      bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(cfg)
    if init_std is not None:
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "norm" not in name:
                    p.copy_(torch.randn(p.shape, generator=gen) * init_std)
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


def teach(model, tokenizer, texts: list[str], *, steps: int = 200, lr: float = 3e-3, batch_size: int = 16,
          seed: int = 0) -> list[float]:
    """Teach ``model`` the ``texts`` by next-token prediction (AdamW, right padding); returns the losses.

    Small and quick on purpose: tests use it to make a tiny LM that *knows* a few facts.
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


# --------------------------------------------------------------------------- every causal-LM architecture
_SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_layers": 2, "n_layer": 2, "n_layers": 2,
          "num_attention_heads": 4, "num_key_value_heads": 2, "n_head": 4, "n_embd": 32, "d_model": 32,
          "intermediate_size": 64, "n_inner": 64, "ffn_dim": 64, "vocab_size": 128, "max_position_embeddings": 256,
          "n_positions": 256, "head_dim": 8, "d_ff": 64, "num_heads": 4, "num_experts": 4, "num_local_experts": 4,
          "n_routed_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32,
          "shared_expert_intermediate_size": 32, "state_size": 8, "expand": 2, "conv_kernel": 4, "time_step_rank": 4,
          "kv_lora_rank": 16, "q_lora_rank": 16, "qk_rope_head_dim": 8, "qk_nope_head_dim": 8, "v_head_dim": 8,
          "attention_hidden_size": 32, "hidden_size_per_head": 8, "linear_num_key_heads": 2,
          "linear_num_value_heads": 2, "linear_key_head_dim": 8, "linear_value_head_dim": 8}
"""Size knobs set on every config that has them (and on its sub-configs)."""
_PER_TYPE = {"mamba2": {"num_heads": 8, "head_dim": 8, "n_groups": 1}}
"""Knobs that must agree with each other in some architectures (mamba2: heads x head_dim = expand x hidden)."""
TINY_MAX_PARAMS = 3_000_000
TINY_VOCAB = 128


def causal_lm_types() -> list[str]:
    """Every model type ``AutoModelForCausalLM`` knows in the installed transformers, sorted."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return sorted(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)


def _shrink(cfg, knobs: dict, depth: int = 0):
    from transformers import PretrainedConfig

    for key, value in knobs.items():
        current = getattr(cfg, key, None)
        if isinstance(current, int) and not isinstance(current, bool):
            try:
                setattr(cfg, key, value)
            except Exception:
                pass
    for attr in ("pad_token_id", "bos_token_id", "eos_token_id"):
        val = getattr(cfg, attr, None)
        if isinstance(val, int) and val >= TINY_VOCAB:
            setattr(cfg, attr, 1)
    if getattr(cfg, "is_decoder", None) is False:  # encoder families used as causal LMs attend left only
        cfg.is_decoder = True
    for lst in ("layer_types", "layers_block_type", "block_types"):
        val = getattr(cfg, lst, None)
        if isinstance(val, list) and len(val) > 2:
            try:
                setattr(cfg, lst, val[:2])
            except Exception:
                pass
    if depth < 2:
        for sub in list(vars(cfg).values()):
            if isinstance(sub, PretrainedConfig):
                _shrink(sub, knobs, depth + 1)
    return cfg


def tiny_config_for(model_type: str):
    """The default config of ``model_type`` shrunk to a few thousand parameters per layer (vocabulary 128,
    hidden 32, 2 layers...), or None when it does not build a causal LM of at most :data:`TINY_MAX_PARAMS`."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        cfg = _shrink(AutoConfig.for_model(model_type), {**_SMALL, **_PER_TYPE.get(model_type, {})})
        with torch.device("meta"):
            n = sum(p.numel() for p in AutoModelForCausalLM.from_config(cfg).parameters())
    except Exception:
        return None
    return cfg if n <= TINY_MAX_PARAMS else None

"""Tokenizer and tiny causal LMs trained from scratch on the world, cached by content hash.

The tokenizer is a BPE model trained on the world's text and the model a tiny ``transformers`` Llama, both from
:mod:`forgetlab.testing.tiny_lm`. Both are saved
with ``save_pretrained`` so every later step loads them exactly like a real model (``AutoModelForCausalLM``).
Training follows TOFU's fine-tuning: AdamW, cosine schedule, loss on answer tokens only.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..eco.base_model import load_base_model
from ..eco.mc_formats import QA_TEMPLATE
from ..eco.scoring import encode_continuation
from ..errors import BadInput, ForgetlabError
from ..runs import atomic_write_json, run_record, write_folder_atomically
from ..testing.tiny_lm import build_tiny_lm, build_tokenizer

CODE_VERSION = "unlearning-lm-1"  # bump when training code changes what a cached model holds
PROMPT_TEMPLATE = QA_TEMPLATE  # the world model learns its facts in this template; the `qa` fit format uses it
SPECIAL_ORDER = ("pad_token", "unk_token", "bos_token", "eos_token")  # token ids 0..3 of the world tokenizer


def prompt_of(question: str) -> str:
    """The prompt a question is asked with, for training, scoring and generation alike."""
    return PROMPT_TEMPLATE.format(question=question)


@dataclass(frozen=True)
class LMConfig:
    """Shape of the tiny Llama (hidden 128, 2 layers memorizes ~1,500 facts) and the tokenizer's vocab."""

    hidden: int = 128
    layers: int = 2
    heads: int = 4
    intermediate: int = 256
    max_len: int = 96
    vocab_size: int = 2048


@dataclass(frozen=True)
class TrainConfig:
    """Fine-tuning hyper-parameters (AdamW, linear warmup then cosine decay to 10%)."""

    epochs: int = 20
    lr: float = 3e-3
    batch_size: int = 64
    weight_decay: float = 0.01
    warmup_frac: float = 0.05
    seed: int = 0


# --- tokenizer -------------------------------------------------------------------------------------------

def train_tokenizer(texts: Sequence[str], vocab_size: int = 2048):
    """Train a BPE tokenizer (Metaspace, unknown characters -> ``<unk>``, ``<s>`` prepended) on ``texts``."""
    return build_tokenizer(texts, vocab_size, padding_side="right", pretokenizer="metaspace", add_bos=True,
                           extra_texts=[prompt_of("")], special_order=SPECIAL_ORDER)


def check_encodable(tokenizer, texts: Sequence[str], where: str = "data") -> None:
    """Raise :class:`ForgetlabError` if ``tokenizer`` maps any character of ``texts`` to its unknown token."""
    unk = tokenizer.unk_token_id
    if unk is None:
        return
    all_ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    for t, ids in zip(texts, all_ids, strict=True):
        if unk in ids:
            bad = sorted({c for c in t if unk in tokenizer(c, add_special_tokens=False)["input_ids"]})
            raise ForgetlabError(f"{where}: the model's tokenizer cannot encode {t[:50]!r}: "
                                 f"unknown characters {''.join(bad)!r}")


def encode_pair(tokenizer, prompt: str, answer: str, eos: bool = True) -> tuple[list[int], int]:
    """Token ids of ``prompt answer </s>`` and the number of prompt tokens.

    Split as every scorer splits (:func:`~forgetlab.eco.scoring.encode_continuation`): the prompt with the
    tokenizer's special tokens (``<s>`` here, whatever a real model adds), the answer (with a leading space) as
    it reads after it, so the boundary is the same in training, scoring and generation.
    """
    p, a = encode_continuation(tokenizer, prompt, " " + answer)
    tail = [tokenizer.eos_token_id] if eos and tokenizer.eos_token_id is not None else []
    return p + a + tail, len(p)


def collate(seqs: Sequence[tuple[list[int], int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad ``(ids, n_prompt)`` pairs: ``input_ids``/``attention_mask``/``labels`` ``[B, T]``.

    ``labels`` is -100 on the prompt and the padding, so the loss covers answer tokens only.
    """
    T = max(len(s) for s, _ in seqs)
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    att = torch.zeros((len(seqs), T), dtype=torch.long)
    lab = torch.full((len(seqs), T), -100, dtype=torch.long)
    for i, (s, n_p) in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        att[i, : len(s)] = 1
        lab[i, n_p: len(s)] = torch.tensor(s[n_p:])
    return {"input_ids": ids, "attention_mask": att, "labels": lab}


# --- model -----------------------------------------------------------------------------------------------

def build_model(cfg: LMConfig, tokenizer, seed: int = 0):
    """A fresh tiny Llama from ``cfg`` (tied embeddings, every weight outside the norms N(0, 0.02^2) from a
    generator seeded ``seed``; no global seeding)."""
    return build_tiny_lm("llama", tokenizer, seed=seed, init_std=0.02, hidden=cfg.hidden, layers=cfg.layers,
                         heads=cfg.heads, kv_heads=cfg.heads, intermediate=cfg.intermediate,
                         max_positions=cfg.max_len, tie_word_embeddings=True)


def lr_lambda(total: int, warmup: int) -> Callable[[int], float]:
    """Linear warmup over ``warmup`` steps, then cosine decay to 10% at ``total``."""
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        t = (step - warmup) / max(1, total - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    return f


def train_lm(model, tokenizer, items: Sequence[dict[str, Any]], cfg: TrainConfig,
             progress: Callable[[int, int, float], None] | None = None) -> dict[str, Any]:
    """Fine-tune ``model`` on question/answer ``items`` (loss on answer tokens only); return timing and losses.

    ``progress(step, total, loss)`` is called after every optimizer step.
    """
    seqs = [encode_pair(tokenizer, prompt_of(it["question"]), it["answer"]) for it in items]
    gen = torch.Generator().manual_seed(cfg.seed)
    n_batches = math.ceil(len(seqs) / cfg.batch_size)
    total = cfg.epochs * n_batches
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(total, int(cfg.warmup_frac * total)))
    model.train()
    t0, step, losses = time.perf_counter(), 0, []
    for _epoch in range(cfg.epochs):
        perm = torch.randperm(len(seqs), generator=gen).tolist()
        ep_loss = 0.0
        for b in range(n_batches):
            batch = collate([seqs[i] for i in perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]],
                            tokenizer.pad_token_id)
            loss = model(**batch).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            ep_loss += loss.item()
            if progress is not None:
                progress(step, total, loss.item())
        losses.append(ep_loss / n_batches)
    model.eval()
    return {"seconds": time.perf_counter() - t0, "epoch_loss": losses, "steps": total, "items": len(seqs)}


# --- cache -----------------------------------------------------------------------------------------------

def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else ``$FORGETLAB_CACHE``, else ``~/.cache/forgetlab``."""
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("FORGETLAB_CACHE", Path.home() / ".cache" / "forgetlab"))


def content_hash(*parts: Any) -> str:
    """Short sha256 of the JSON of ``parts`` (configs, item texts, code version)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def cached_tokenizer(texts: Sequence[str], vocab_size: int, cache_dir: str | os.PathLike | None = None) -> Path:
    """Folder of the tokenizer trained on ``texts`` (trained once, then loaded from the cache)."""
    key = content_hash("tokenizer", vocab_size, list(texts), CODE_VERSION)
    final = cache_root(cache_dir) / "tokenizers" / key
    if not (final / "tokenizer.json").is_file():
        tok = train_tokenizer(texts, vocab_size)
        write_folder_atomically(final, lambda d: tok.save_pretrained(d))
    return final


def cached_lm(name: str, items: Sequence[dict[str, Any]], tokenizer_dir: Path, lm_cfg: LMConfig,
              train_cfg: TrainConfig, cache_dir: str | os.PathLike | None = None,
              progress: Callable[[int, int, float], None] | None = None) -> tuple[Path, dict[str, Any]]:
    """Folder of a model trained on ``items`` (``save_pretrained`` format, tokenizer included) and its record.

    The key hashes the item texts, both configs, the tokenizer and :data:`CODE_VERSION`; a hit costs nothing.
    """
    from transformers import AutoTokenizer

    texts = [(it["question"], it["answer"]) for it in items]
    key = content_hash(name, texts, asdict(lm_cfg), asdict(train_cfg), tokenizer_dir.name, CODE_VERSION)
    final = cache_root(cache_dir) / "models" / f"{name}-{key}"
    rec_path = final / "training.json"
    if rec_path.is_file():
        return final, json.loads(rec_path.read_text())
    if not items:
        raise BadInput("items", 0, "at least one training item")
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    model = build_model(lm_cfg, tok, seed=train_cfg.seed)
    stats = train_lm(model, tok, items, train_cfg, progress)
    record = run_record({"lm": lm_cfg, "train": train_cfg, "name": name}, seed=train_cfg.seed,
                        key=key, **stats)

    def write(d: Path) -> None:
        model.save_pretrained(d)
        tok.save_pretrained(d)
        atomic_write_json(d / "training.json", record)

    write_folder_atomically(final, write)
    return final, record


def load_lm(path: str | os.PathLike):
    """Load a causal LM folder and its tokenizer (any Hugging Face model folder works); eval mode, CPU."""
    return load_base_model(path)

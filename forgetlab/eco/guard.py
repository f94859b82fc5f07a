"""``EcoGuard``: any local Hugging Face causal LM behind ECO's flag rule and embedding corruption.

A guard bundles the base model and tokenizer, a flag rule (a prompt classifier, optionally OR a forget-entity
match: :class:`~forgetlab.eco.classify.rule.FlagRule`), an optional token classifier (``GuardConfig.entity_tokens``:
corrupt only the forget-entity characters of a flagged prompt) and the corruption with its fitted parameters
(name, strength, k, seed). ``generate`` takes the same arguments as HF ``generate``; ``forward`` /
``answer_logprobs`` score teacher-forced sequences with only the prompt part corrupted; ``prompt_embeddings`` gives
the ``[T, d]`` embeddings a prompt-embeds backend (vLLM) should be fed. Unflagged prompts never go through the
corruption hook, so they get the base model's exact logits and outputs. ``save_pretrained`` /
``from_pretrained`` write and read a checksummed guard folder (:mod:`forgetlab.eco.guard_folder`).

:class:`GuardLike` is the contract a server needs from a guard; :class:`PlainModel` is an unguarded model behind
it (the "without guard" baseline).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from ..errors import BadInput, ForgetlabError
from .base_model import load_base_model
from .classify.rule import FlagRule
from .corrupter import Corrupter, GuardConfig, score_continuations
from .corruptions import apply_rowwise, validate
from .guard_folder import (
    load_classifier,
    load_flag_rule,
    read_guard_folder,
    read_guard_meta,
    register_classifier_type,
    write_guard_folder,
)
from .hooks import corrupt_embeddings, hidden_size, input_embeddings
from .scoring import TokenScores, continuation_logprobs, pack

__all__ = ["EcoGuard", "FlagRule", "GuardConfig", "GuardLike", "PlainModel", "load_base_model",
           "register_classifier_type"]


@runtime_checkable
class GuardLike(Protocol):
    """What a server needs from a guard (:class:`EcoGuard` satisfies it).

    ``classify(prompts)`` returns one flag per prompt; ``generate(input_ids, attention_mask, flags=...,
    **hf_kwargs)`` is HF ``generate`` with the prompts at ``flags`` corrupted; ``prompt_embeddings(prompt_ids,
    flagged)`` returns ``[T, d]`` input embeddings, corrupted when flagged (for vLLM's prompt embeds).
    """

    model: Any
    tokenizer: Any

    def classify(self, prompts: Sequence[str]) -> Sequence[bool]: ...

    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                 flags: Sequence[bool] | None = None, **kwargs: Any) -> torch.Tensor: ...


class PlainModel:
    """An unguarded model behind the guard interface: nothing is ever flagged (the 'without guard' baseline)."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model, self.tokenizer = model, tokenizer

    def classify(self, prompts: Sequence[str]) -> list[bool]:
        return [False] * len(prompts)

    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                 flags: Sequence[bool] | None = None, **kwargs: Any) -> torch.Tensor:
        return self.model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    def prompt_embeddings(self, prompt_ids: Sequence[int], flagged: bool = False) -> torch.Tensor:
        ids = torch.tensor([list(prompt_ids)], device=self.model.device)
        with torch.no_grad():
            return self.model.get_input_embeddings()(ids)[0]

    def score_sequences(self, sequences: Sequence[Sequence[int]], prompt_lengths: Sequence[int],
                        flags: Sequence[bool] | None = None, *, starts: Sequence[int] | None = None,
                        top_k: int = 0) -> TokenScores:
        """Teacher-forced log-probs of the base model (nothing is ever corrupted): see
        :meth:`EcoGuard.score_sequences`."""
        starts = list(prompt_lengths if starts is None else starts)
        batch = pack([(s[:a], s[a:]) for s, a in zip(sequences, starts, strict=True)],
                     self.tokenizer.pad_token_id or 0)
        return continuation_logprobs(self.model, batch, None, top_k=top_k)


class EcoGuard:
    """A causal LM guarded by ECO: flagged prompts have their input embeddings corrupted (prompt positions only)."""

    def __init__(self, model, tokenizer, classifier, config: GuardConfig, *, token_classifier=None,
                 model_path: str | Path | None = None, fit: dict | None = None) -> None:
        self.model, self.tokenizer, self.classifier = model, tokenizer, classifier
        self.token_classifier = token_classifier
        self.config = config
        self.model_path = Path(model_path).resolve() if model_path is not None else None
        self.fit = fit
        self.flag_rule = FlagRule(classifier, token_classifier, config.flag_entities)
        d = hidden_size(model)
        validate(config.corruption, torch.zeros(1, 1, d), torch.zeros(1, 1, dtype=torch.bool), config.strength,
                 config.k, torch.Generator())
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token

    @classmethod
    def from_base(cls, model_path: str | Path, classifier, config: GuardConfig, *, token_classifier=None,
                  fit: dict | None = None, dtype=None, device: str | None = None) -> EcoGuard:
        """Guard the HF causal LM stored in the local folder ``model_path``."""
        model, tokenizer = load_base_model(model_path, dtype=dtype, device=device)
        return cls(model, tokenizer, classifier, config, token_classifier=token_classifier,
                   model_path=model_path, fit=fit)

    # -- classification -------------------------------------------------------------------------------------

    def classify(self, prompts: str | Sequence[str]) -> np.ndarray:
        """Flags ``bool [B]``: is each prompt about the forget target."""
        return self.flag_rule.flag(prompts)

    def scores(self, prompts: str | Sequence[str]) -> np.ndarray:
        """The classifier's scores ``[B]``."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        return np.asarray(self.classifier.score(prompts), dtype=float)

    @property
    def corrupter(self) -> Corrupter:
        """Masks and noise seeds of this guard (:mod:`forgetlab.eco.corrupter`: the one code path that fitting
        and scoring share)."""
        return Corrupter(self.tokenizer, self.config, self.token_classifier)

    def row_seeds(self, input_ids: torch.Tensor, mask: torch.Tensor) -> list[int]:
        """One noise seed per row: SHA-256 of (guard seed, the row's token ids at corrupted positions).

        A prompt therefore gets the same corruption alone or in any batch, with any padding, in ``generate``,
        ``forward`` and ``prompt_embeddings``; different prompts get different noise.
        """
        return self.corrupter.seeds(input_ids, mask)

    def _corrupting(self, mask: torch.Tensor, input_ids: torch.Tensor):
        c = self.config
        return corrupt_embeddings(self.model, mask.to(self._device()), c.corruption, c.strength, c.k,
                                  row_seeds=self.row_seeds(input_ids, mask))

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _texts(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> list[str]:
        ids = input_ids if attention_mask is None else [r[m.bool()] for r, m in zip(input_ids, attention_mask,
                                                                                   strict=True)]
        return [self.tokenizer.decode(r.tolist(), skip_special_tokens=True) for r in ids]

    def corruption_mask(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                        flags: Sequence[bool], prompt_mask: torch.Tensor | None = None,
                        texts: Sequence[str] | None = None) -> torch.Tensor:
        """Positions to corrupt ``bool [B, T]`` (see :mod:`forgetlab.eco.corrupter`): the chosen prompt tokens of
        flagged rows. ``prompt_mask`` restricts to the prompt part of prompt+answer sequences."""
        base = (torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None
                else attention_mask.bool().cpu())
        if prompt_mask is not None:
            base &= prompt_mask.bool().cpu()
        return self.corrupter.mask(input_ids, base, flags, texts)

    # -- generation and scoring -----------------------------------------------------------------------------

    def _encode(self, prompts: str | Sequence[str]) -> tuple[list[str], Any]:
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompts or not all(isinstance(p, str) for p in prompts):
            raise BadInput("prompts", prompts, "a non-empty list of strings")
        side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "left"
        try:
            enc = self.tokenizer(prompts, return_tensors="pt", padding=True)
        finally:
            self.tokenizer.padding_side = side
        return prompts, enc

    def generate(self, prompts: str | Sequence[str] | None = None, *, input_ids: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, flags: Sequence[bool] | None = None,
                 **hf_kwargs: Any) -> torch.Tensor:
        """HF ``generate`` under the guard; returns what HF returns (prompt + new token ids by default).

        Give ``prompts`` (text; left padded here) or ``input_ids`` / ``attention_mask`` as for HF. ``flags``
        overrides the classifier (one per row); otherwise the prompts (or the decoded ids) are classified.
        """
        texts = None
        if prompts is not None:
            if input_ids is not None:
                raise BadInput("prompts", "both prompts and input_ids", "one of them")
            texts, enc = self._encode(prompts)
            input_ids, attention_mask = enc.input_ids, enc.attention_mask
        if input_ids is None:
            raise BadInput("input_ids", None, "prompts (text) or input_ids")
        if flags is None:
            flags = self.classify(texts if texts is not None else self._texts(input_ids, attention_mask))
        flags = np.asarray(flags, dtype=bool).reshape(-1)
        if flags.shape[0] != input_ids.shape[0]:
            raise BadInput("flags", len(flags), f"one flag per row ({input_ids.shape[0]})")
        dev = self._device()
        input_ids = input_ids.to(dev)
        attention_mask = attention_mask.to(dev) if attention_mask is not None else None
        if "generation_config" not in hf_kwargs:  # a passed GenerationConfig keeps its own pad id
            hf_kwargs.setdefault("pad_token_id", self.tokenizer.pad_token_id)
        with torch.no_grad():
            if not flags.any():  # nothing flagged: the base model untouched
                return self.model.generate(input_ids=input_ids, attention_mask=attention_mask, **hf_kwargs)
            mask = self.corruption_mask(input_ids.cpu(), None if attention_mask is None else attention_mask.cpu(),
                                        flags, texts=texts)
            with self._corrupting(mask, input_ids):
                return self.model.generate(input_ids=input_ids, attention_mask=attention_mask, **hf_kwargs)

    def generate_text(self, prompts: str | Sequence[str], **hf_kwargs: Any) -> list[dict[str, Any]]:
        """``[{"prompt", "flagged", "text"}]``: the decoded continuation of each prompt and its flag."""
        texts, enc = self._encode(prompts)
        flags = self.classify(texts)
        out = self.generate(input_ids=enc.input_ids, attention_mask=enc.attention_mask, flags=flags, **hf_kwargs)
        new = out[:, enc.input_ids.shape[1]:]
        return [{"prompt": p, "flagged": bool(f), "text": self.tokenizer.decode(n, skip_special_tokens=True)}
                for p, f, n in zip(texts, flags, new, strict=True)]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                flags: Sequence[bool] | None = None, prompts: Sequence[str] | None = None,
                prompt_lengths: Sequence[int] | torch.Tensor | None = None, **hf_kwargs: Any):
        """The model's forward pass under the guard (teacher forcing); returns the HF output (``.logits``).

        ``prompt_lengths``: how many leading real tokens of each row are the prompt (the rest is an answer, never
        corrupted); None corrupts the whole sequence of a flagged row. Flags come from ``flags``, else from
        classifying ``prompts``, else from the decoded prompt part of each row.
        """
        dev = self._device()
        attn = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
        pmask = None
        if prompt_lengths is not None:
            lens = torch.as_tensor(prompt_lengths).view(-1, 1).cpu()
            pmask = (attn.cpu().cumsum(1) <= lens) & attn.cpu().bool()
        if flags is None:
            if prompts is None:
                real = attn.cpu().bool() if pmask is None else pmask
                prompts = [self.tokenizer.decode(r[m].tolist(), skip_special_tokens=True)
                           for r, m in zip(input_ids.cpu(), real, strict=True)]
            flags = self.classify(list(prompts))
        flags = np.asarray(flags, dtype=bool).reshape(-1)
        if flags.shape[0] != input_ids.shape[0]:
            raise BadInput("flags", len(flags), f"one flag per row ({input_ids.shape[0]})")
        kw = {"input_ids": input_ids.to(dev), "attention_mask": attn.to(dev), **hf_kwargs}
        if not flags.any():
            return self.model(**kw)
        mask = self.corruption_mask(input_ids.cpu(), attn.cpu(), flags, prompt_mask=pmask)
        with self._corrupting(mask, input_ids):
            return self.model(**kw)

    __call__ = forward

    def logits(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """``forward(...).logits`` ``[B, T, vocab]``."""
        return self.forward(*args, **kwargs).logits

    @torch.no_grad()
    def answer_logprobs(self, prompts: Sequence[str], answers: Sequence[str],
                        flags: Sequence[bool] | None = None) -> torch.Tensor:
        """Sum of log-probs ``[B]`` of each answer given its prompt, under the guard (only prompts corrupted)."""
        if len(prompts) != len(answers):
            raise BadInput("answers", len(answers), f"one answer per prompt ({len(prompts)})")
        if flags is None:
            flags = self.classify(list(prompts))
        scores = score_continuations(self.model, self.tokenizer, list(prompts), list(answers),
                                     corrupter=self.corrupter, flags=flags).logprobs
        return torch.stack([torch.from_numpy(lp).sum() for lp in scores])

    @torch.no_grad()
    def score_sequences(self, sequences: Sequence[Sequence[int]], prompt_lengths: Sequence[int],
                        flags: Sequence[bool], *, starts: Sequence[int] | None = None,
                        top_k: int = 0) -> TokenScores:
        """Teacher-forced log-probs of tokens ``[starts[r], len)`` of each token sequence under the guard.

        The first ``prompt_lengths[r]`` positions of a flagged row are corrupted exactly as :meth:`generate`
        corrupts that prompt (the corrupter's mask and seeds); the rest (an answer, or generated tokens) never
        is. ``starts`` defaults to the prompt lengths (score the continuation); ``starts[r] = 1`` scores the
        prompt's own tokens too (an API's ``echo``). ``top_k`` adds the k most likely tokens at each position.
        """
        starts = list(prompt_lengths if starts is None else starts)
        batch = pack([(s[:a], s[a:]) for s, a in zip(sequences, starts, strict=True)], self.tokenizer.pad_token_id)
        corrupt = None
        if np.asarray(flags, dtype=bool).any():
            positions = torch.arange(batch.ids.shape[1])[None]
            prompt_mask = (positions < torch.tensor(list(prompt_lengths))[:, None]) & batch.attention.bool()
            mask = self.corrupter.mask(batch.ids, prompt_mask, flags)
            corrupt = self.corrupter.corrupt(batch.ids, mask, prompt_mask)
        return continuation_logprobs(self.model, batch, corrupt, top_k=top_k)

    @torch.no_grad()
    def prompt_embeddings(self, prompt: str | Sequence[int], flagged: bool | None = None) -> torch.Tensor:
        """Input embeddings ``[T, d]`` of one prompt (text, or token ids as given), corrupted when flagged.

        Equal to what :meth:`generate` feeds the model for this prompt alone, so a prompt-embeds backend
        (vLLM) generates like the guard. ``flagged=None`` classifies the prompt.
        """
        if isinstance(prompt, str):
            text = prompt
            ids = self.tokenizer(prompt, return_tensors="pt").input_ids
        else:
            ids = torch.tensor([list(prompt)], dtype=torch.long)
            text = self.tokenizer.decode(ids[0].tolist(), skip_special_tokens=True)
        if flagged is None:
            flagged = bool(self.classify([text])[0])
        emb = input_embeddings(self.model)
        clean = emb(ids.to(self._device()))
        if not flagged:
            return clean[0]
        mask = self.corruption_mask(ids, None, [True], texts=[text] if isinstance(prompt, str) else None)
        c = self.config
        out = apply_rowwise(c.corruption, clean, mask.to(clean.device), c.strength, c.k, self.row_seeds(ids, mask))
        return out[0]

    # -- persistence ----------------------------------------------------------------------------------------

    def save_pretrained(self, path: str | Path, *, copy_model: bool = False, overwrite: bool = False) -> Path:
        """Write the guard folder (:mod:`forgetlab.eco.guard_folder`); ``guard.json`` last, atomically."""
        if not copy_model and self.model_path is None:
            raise BadInput("copy_model", False, "True: this guard's model was not loaded from a folder")

        def save_model(folder: Path) -> None:
            self.model.save_pretrained(folder)
            self.tokenizer.save_pretrained(folder)

        return write_guard_folder(path, config=asdict(self.config), classifier=self.classifier,
                                  token_classifier=self.token_classifier, model_dir=self.model_path,
                                  save_model=save_model if copy_model else None, fit=self.fit, overwrite=overwrite)

    @staticmethod
    def load_classifier(path: str | Path):
        """Only the prompt classifier of a guard folder (checksums verified), without loading the base model."""
        path = Path(path)
        return load_classifier(read_guard_meta(path), path)

    @staticmethod
    def load_flag_rule(path: str | Path) -> FlagRule:
        """The flag rule of a guard folder, checksums verified, without loading the base model: what
        ``classify`` of the loaded guard does."""
        return load_flag_rule(path)

    @classmethod
    def from_pretrained(cls, path: str | Path, *, dtype=None, device: str | None = None,
                        verify: bool = True) -> EcoGuard:
        """Load a guard folder; every recorded checksum is verified first (``verify=False`` skips the base
        model's, e.g. for a huge referenced model already trusted)."""
        parts = read_guard_folder(path, verify=verify)
        try:
            config = GuardConfig(**parts.config)
        except TypeError as exc:
            raise ForgetlabError(f"{Path(path) / 'guard.json'}: broken record ({exc})") from None
        model, tokenizer = load_base_model(parts.model_dir, dtype=dtype, device=device)
        return cls(model, tokenizer, parts.classifier, config, token_classifier=parts.token_classifier,
                   model_path=parts.model_dir, fit=parts.fit)

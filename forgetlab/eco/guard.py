"""``EcoGuard``: any local Hugging Face causal LM behind ECO's flag rule and embedding corruption.

A guard bundles the base model and tokenizer, a flag rule (a prompt classifier, optionally OR a forget-entity
match: :class:`~forgetlab.eco.classify.rule.FlagRule`), an optional token classifier (``GuardConfig.entity_tokens``:
corrupt only the forget-entity characters of a flagged prompt) and the corruption with its fitted parameters
(name, strength, k, seed). ``generate`` takes the same arguments as HF ``generate``; ``forward`` /
``answer_logprobs`` score teacher-forced sequences with only the prompt part corrupted; ``prompt_embeddings`` gives
the ``[T, d]`` embeddings a prompt-embeds backend (vLLM) should be fed. Unflagged prompts never go through the
corruption hook, so they get the base model's exact logits and outputs. ``save_pretrained`` /
``from_pretrained`` write and read a checksummed guard folder (:mod:`forgetlab.eco.guard_folder`); the base model
may be referenced relative to the guard folder or by hub id and revision, and may be loaded on any device and in
any dtype (:class:`~forgetlab.eco.placement.Placement`). A guard behaves like the model it wraps: ``.device``,
``.dtype``, ``generate``, ``forward`` / ``__call__``, and any other model attribute (``generation_config``,
``name_or_path``...) read through to the model.

:class:`GuardLike` is the contract a server needs from a guard; :class:`PlainModel` is an unguarded model behind
it (the "without guard" baseline).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from ..errors import BadInput, ForgetlabError
from .base_model import ModelSource, input_device, load_base_model, resolve_model
from .classify.rule import FlagRule
from .corrupter import Corrupter, GuardConfig
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
from .placement import Placement
from .scoring import Packed, TokenScores, continuation_logprobs, encode_continuation, pack
from .targets import DEFAULT_TARGET, Target, TargetRules, check_name, per_target, target_flags

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


class _OnModel:
    """``device`` and ``dtype`` of a wrapper of ``self.model``, shared by :class:`PlainModel` and :class:`EcoGuard`."""

    model: Any

    @property
    def device(self) -> torch.device:
        """Where input ids go: the device of the model's input embeddings (its first stage under a device map)."""
        return input_device(self.model)

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the model's input embeddings: the dtype every corruption is applied in."""
        return input_embeddings(self.model).weight.dtype


class PlainModel(_OnModel):
    """An unguarded model behind the guard interface: nothing is ever flagged (the 'without guard' baseline)."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model, self.tokenizer = model, tokenizer

    def classify(self, prompts: Sequence[str]) -> list[bool]:
        return [False] * len(prompts)

    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                 flags: Sequence[bool] | None = None, **kwargs: Any) -> torch.Tensor:
        return self.model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    def prompt_embeddings(self, prompt_ids: Sequence[int], flagged: bool = False) -> torch.Tensor:
        ids = torch.tensor([list(prompt_ids)], device=input_device(self.model))
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

    @torch.no_grad()
    def score_packed(self, batch: Packed, flags: Sequence[bool] | None = None, *, texts=None, whole: bool = False,
                     with_dist: bool = False) -> TokenScores:
        """Teacher-forced continuation scores of the plain model (nothing is ever corrupted)."""
        return continuation_logprobs(self.model, batch, None, with_dist)


class EcoGuard(_OnModel):
    """A causal LM guarded by ECO: flagged prompts have their input embeddings corrupted (prompt positions only).

    A guard holds one or more forget targets (:mod:`forgetlab.eco.targets`); ``classifier``, ``config``,
    ``token_classifier`` and ``fit`` are those of the first. With several, the flag rule is their union and a
    flagged prompt gets the corruption of each target that flags it, on that target's positions."""

    def __init__(self, model, tokenizer, classifier, config: GuardConfig, *, token_classifier=None,
                 model_path: str | Path | None = None, fit: dict | None = None,
                 model_source: ModelSource | None = None, name: str = DEFAULT_TARGET) -> None:
        self.model, self.tokenizer, self.classifier = model, tokenizer, classifier
        self.token_classifier = token_classifier
        self.config = config
        if model_source is None and model_path is not None:
            model_source = ModelSource(Path(model_path).resolve())
        self.model_source = model_source
        self.fit = fit
        self.flag_rule = FlagRule(classifier, token_classifier, config.flag_entities)
        d = hidden_size(model)
        validate(config.corruption, torch.zeros(1, 1, d), torch.zeros(1, 1, dtype=torch.bool), config.strength,
                 config.k, torch.Generator())
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.name = check_name(name)
        self._targets: list[Target] = [Target(name, classifier, config, token_classifier, fit)]
        self._last_flags: tuple[tuple[str, ...], np.ndarray] | None = None  # the last texts classified, per target
        self.folder: Path | None = None  # the guard folder this guard was loaded from
        self.model_key: Any = None  # what the folder recorded of the base model (a reload must not change it)

    @classmethod
    def from_base(cls, model_path: str | Path, classifier, config: GuardConfig, *, token_classifier=None,
                  fit: dict | None = None, dtype=None, device: str | None = None, revision: str | None = None,
                  placement: Placement | None = None, name: str = DEFAULT_TARGET) -> EcoGuard:
        """Guard the HF causal LM in the local folder ``model_path``, or the hub id ``model_path`` at ``revision``
        (from the local hub cache), placed by ``placement`` (``dtype`` / ``device`` override it)."""
        source = resolve_model(model_path, revision)
        model, tokenizer = load_base_model(source.folder, dtype=dtype, device=device, placement=placement)
        return cls(model, tokenizer, classifier, config, token_classifier=token_classifier,
                   model_source=source, fit=fit, name=name)

    # -- the wrapped model's face ---------------------------------------------------------------------------

    @property
    def model_path(self) -> Path | None:
        """The local folder of the base model (None for a model built in memory)."""
        return None if self.model_source is None else self.model_source.folder

    @property
    def model_config(self) -> Any:
        """The wrapped model's Hugging Face config (``config`` is the guard's own :class:`GuardConfig`)."""
        return self.model.config

    def __getattr__(self, name: str) -> Any:
        """Any other attribute reads through to the wrapped model (``generation_config``, ``name_or_path``...)."""
        if name.startswith("__") or "model" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.__dict__["model"], name)

    # -- forget targets -------------------------------------------------------------------------------------

    @property
    def targets(self) -> list[Target]:
        """The guard's forget targets, in the order their corruptions apply."""
        return list(self._targets)

    def add_target(self, target: Target) -> None:
        """Add a forget request (its own classifiers, config and fit); the other targets are untouched."""
        names = [t.name for t in self._targets]
        if target.name in names:
            raise BadInput("name", target.name, "a name no target of this guard has yet (" + ", ".join(names) + ")")
        self._check_config(target.config)
        self._set_targets([*self._targets, target])

    def remove_target(self, name: str) -> Target:
        """Drop the target called ``name`` (a guard keeps at least one); returns it."""
        names = [t.name for t in self._targets]
        if name not in names or len(names) == 1:
            raise BadInput("remove", name, "one target of a guard that has several: " + ", ".join(names))
        gone = self._targets[names.index(name)]
        self._set_targets([t for t in self._targets if t.name != name])
        return gone

    def _check_config(self, config: GuardConfig) -> None:
        d = hidden_size(self.model)
        validate(config.corruption, torch.zeros(1, 1, d), torch.zeros(1, 1, dtype=torch.bool), config.strength,
                 config.k, torch.Generator())

    def _set_targets(self, targets: list[Target]) -> None:
        """Make ``targets`` the guard's (the first gives the single-target attributes)."""
        first = targets[0]
        self.classifier, self.token_classifier, self.config = first.classifier, first.token_classifier, first.config
        self.fit, self.name, self.flag_rule = first.fit, first.name, first.rule
        self._targets, self._last_flags = list(targets), None

    def _view(self, target: Target) -> EcoGuard:
        """This guard with ``target`` as its only target (shares model and tokenizer)."""
        view = object.__new__(EcoGuard)
        view.__dict__.update(self.__dict__)
        view._set_targets([target])
        return view

    # -- classification -------------------------------------------------------------------------------------

    def classify(self, prompts: str | Sequence[str]) -> np.ndarray:
        """Flags ``bool [B]``: is each prompt about a forget target (the union of the targets' rules)."""
        if len(self._targets) == 1:
            return self.flag_rule.flag(prompts)
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        m = target_flags(self._targets, prompts)
        self._last_flags = (tuple(prompts), m)
        return m.any(axis=0)

    def which_targets(self, prompts: Sequence[str]) -> list[list[str]]:
        """The names of the targets that flag each prompt."""
        return TargetRules([(t.name, t.rule) for t in self._targets]).which(list(prompts))

    def _per_target(self, flags: Any, texts: Sequence[str] | None) -> np.ndarray:
        """``bool [T, B]``: the rows each target corrupts (the last classification reused when it was of these
        texts)."""
        last = self._last_flags
        f = np.asarray(flags, dtype=bool)
        if f.ndim == 1 and last is not None and texts is not None and last[0] == tuple(texts):
            m = last[1] & f[None]
            m[:, f & ~m.any(axis=0)] = True  # flagged on another text: every target's corruption
            return m
        return per_target(self._targets, f, texts)

    @contextmanager
    def _corrupting_all(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, flags: Any,
                        texts: Sequence[str] | None = None,
                        prompt_mask: torch.Tensor | None = None) -> Iterator[None]:
        """Within the block, the model's embeddings are corrupted as the flagged rows ``[B]`` need: this guard's
        corruption, or with several targets each target's on the rows it flags (hooks stacked in target
        order). ``texts``: the prompts as text; ``prompt_mask``: the prompt part of prompt+answer rows."""
        attn = None if attention_mask is None else attention_mask.cpu()
        with ExitStack() as stack:
            if len(self._targets) == 1:
                mask = self.corruption_mask(input_ids.cpu(), attn, flags, prompt_mask=prompt_mask, texts=texts)
                stack.enter_context(self._corrupting(mask, input_ids))
            else:
                if texts is None:
                    real = attn.bool() if attn is not None else torch.ones_like(input_ids.cpu(), dtype=torch.bool)
                    real = real & prompt_mask.bool().cpu() if prompt_mask is not None else real
                    texts = [self.tokenizer.decode(r[m].tolist(), skip_special_tokens=True)
                             for r, m in zip(input_ids.cpu(), real, strict=True)]
                for target, f in zip(self._targets, self._per_target(flags, texts), strict=True):
                    if f.any():
                        view = self._view(target)
                        mask = view.corruption_mask(input_ids.cpu(), attn, f, prompt_mask=prompt_mask, texts=texts)
                        stack.enter_context(view._corrupting(mask, input_ids))
            yield

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
        return input_device(self.model)

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
            with self._corrupting_all(input_ids, attention_mask, flags, texts):
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
        with self._corrupting_all(input_ids, attn, flags, prompts, prompt_mask=pmask):
            return self.model(**kw)

    __call__ = forward

    def logits(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """``forward(...).logits`` ``[B, T, vocab]``."""
        return self.forward(*args, **kwargs).logits

    @torch.no_grad()
    def score_packed(self, batch: Packed, flags: Sequence[bool], *, texts: Sequence[str] | None = None,
                     whole: bool = False, with_dist: bool = False) -> TokenScores:
        """Teacher-forced continuation scores of a packed batch under the guard (the one scorer,
        :func:`~forgetlab.eco.scoring.continuation_logprobs`): the prompt positions of flagged rows corrupted,
        with this guard's token mask and noise seeds; the continuation is never corrupted. ``whole``: corrupt
        every real token of a flagged row (a text scored as the prompt it would be in deployment). ``texts``:
        the prompts as text, for the token classifier (decoded from the ids otherwise)."""
        flags = np.asarray(flags, dtype=bool).reshape(-1)
        if flags.shape[0] != batch.ids.shape[0]:
            raise BadInput("flags", len(flags), f"one flag per row ({batch.ids.shape[0]})")
        if not flags.any():
            return continuation_logprobs(self.model, batch, None, with_dist)
        with self._corrupting_all(batch.ids, batch.attention, flags, texts,
                                  prompt_mask=None if whole else batch.prompt_mask()):
            return continuation_logprobs(self.model, batch, None, with_dist)

    @torch.no_grad()
    def answer_logprobs(self, prompts: Sequence[str], answers: Sequence[str],
                        flags: Sequence[bool] | None = None) -> torch.Tensor:
        """Sum of log-probs ``[B]`` of each answer given its prompt, under the guard (only prompts corrupted)."""
        if len(prompts) != len(answers):
            raise BadInput("answers", len(answers), f"one answer per prompt ({len(prompts)})")
        if flags is None:
            flags = self.classify(list(prompts))
        pairs = [encode_continuation(self.tokenizer, p, a) for p, a in zip(prompts, answers, strict=True)]
        batch = pack(pairs, self.tokenizer.pad_token_id)
        scores = self.score_packed(batch, flags, texts=list(prompts)).logprobs
        return torch.stack([torch.from_numpy(lp).sum() for lp in scores])

    @torch.no_grad()
    def score_sequences(self, sequences: Sequence[Sequence[int]], prompt_lengths: Sequence[int],
                        flags: Sequence[bool], *, starts: Sequence[int] | None = None,
                        top_k: int = 0) -> TokenScores:
        """Teacher-forced log-probs of tokens ``[starts[r], len)`` of each token sequence under the guard.

        The first ``prompt_lengths[r]`` positions of a flagged row are corrupted exactly as :meth:`generate`
        corrupts that prompt (every target's mask and seeds); the rest (an answer, or generated tokens) never
        is. ``starts`` defaults to the prompt lengths (score the continuation); ``starts[r] = 1`` scores the
        prompt's own tokens too (an API's ``echo``). ``top_k`` adds the k most likely tokens at each position.
        """
        starts = list(prompt_lengths if starts is None else starts)
        batch = pack([(s[:a], s[a:]) for s, a in zip(sequences, starts, strict=True)], self.tokenizer.pad_token_id)
        flags = np.asarray(flags, dtype=bool).reshape(-1)
        if not flags.any():
            return continuation_logprobs(self.model, batch, None, top_k=top_k)
        positions = torch.arange(batch.ids.shape[1])[None]
        prompt_mask = (positions < torch.tensor(list(prompt_lengths))[:, None]) & batch.attention.bool()
        with self._corrupting_all(batch.ids, batch.attention, flags, None, prompt_mask=prompt_mask):
            return continuation_logprobs(self.model, batch, None, top_k=top_k)

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
        if len(self._targets) > 1:  # each flagging target in turn, as the stacked hooks of generate apply them
            for target, f in zip(self._targets, self._per_target([True], [text]), strict=True):
                if f.any():
                    v = self._view(target)
                    mask = v.corruption_mask(ids, None, [True], texts=[text] if isinstance(prompt, str) else None)
                    c = v.config
                    clean = apply_rowwise(c.corruption, clean, mask.to(clean.device), c.strength, c.k,
                                          v.row_seeds(ids, mask))
            return clean[0]
        mask = self.corruption_mask(ids, None, [True], texts=[text] if isinstance(prompt, str) else None)
        c = self.config
        out = apply_rowwise(c.corruption, clean, mask.to(clean.device), c.strength, c.k, self.row_seeds(ids, mask))
        return out[0]

    # -- persistence ----------------------------------------------------------------------------------------

    def save_pretrained(self, path: str | Path, *, copy_model: bool = False, overwrite: bool = False) -> Path:
        """Write the guard folder (:mod:`forgetlab.eco.guard_folder`); ``guard.json`` last, atomically. The base
        model is copied in (``copy_model``) or referenced: by hub id and commit, or by its path relative to
        ``path`` (a temporary sibling of the final folder gives the same relative path)."""
        if not copy_model and self.model_source is None:
            raise BadInput("copy_model", False, "True: this guard's model was not loaded from a folder")

        def save_model(folder: Path) -> None:
            src = self.model_path
            if src is not None and src.is_dir():  # the files as loaded, byte for byte (and their checksums)
                shutil.copytree(src, folder, dirs_exist_ok=True)
                return
            self.model.save_pretrained(folder)
            self.tokenizer.save_pretrained(folder)

        extra = [{"name": t.name, "config": asdict(t.config), "classifier": t.classifier,
                  "token_classifier": t.token_classifier, "fit": t.fit} for t in self._targets[1:]]
        return write_guard_folder(path, config=asdict(self.config), classifier=self.classifier,
                                  token_classifier=self.token_classifier, model_source=self.model_source,
                                  save_model=save_model if copy_model else None, fit=self.fit, overwrite=overwrite,
                                  name=self.name, targets=extra)

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
                        placement: Placement | None = None, verify: bool = True) -> EcoGuard:
        """Load a guard folder on ``placement`` (``dtype`` / ``device`` override it); every recorded checksum is
        verified first (``verify=False`` skips the base model's, e.g. for a huge referenced model already
        trusted). A moved guard finds a model referenced relative to it; a missing or changed model is refused."""
        parts = read_guard_folder(path, verify=verify)
        targets = _targets_of(parts, Path(path))
        model, tokenizer = load_base_model(parts.model_dir, dtype=dtype, device=device, placement=placement)
        first = targets[0]
        guard = cls(model, tokenizer, first.classifier, first.config, token_classifier=first.token_classifier,
                    model_source=parts.model_source, fit=first.fit, name=first.name)
        for t in targets[1:]:
            guard.add_target(t)
        guard.folder, guard.model_key = Path(path), parts.model_key
        return guard

    def reload_targets(self, verify: bool = True) -> bool:
        """Re-read the targets of the folder this guard was loaded from (a served guard whose folder changed:
        a target added or removed); the model stays loaded. Returns whether anything changed. A folder whose
        record now names another base model is refused (:class:`ForgetlabError`): that needs a new guard."""
        if self.folder is None:
            raise BadInput("guard", None, "a guard loaded with EcoGuard.from_pretrained (it knows its folder)")
        parts = read_guard_folder(self.folder, verify=False)
        if parts.model_key != self.model_key:
            raise ForgetlabError(f"guard {self.folder}: the folder now records another base model; load it anew")
        if verify:
            read_guard_folder(self.folder, verify=True)
        targets = _targets_of(parts, self.folder)
        for t in targets:
            self._check_config(t.config)
        before = [(t.name, asdict(t.config), t.fit) for t in self._targets]
        self._set_targets(targets)
        return before != [(t.name, asdict(t.config), t.fit) for t in targets]


def _targets_of(parts: Any, path: Path) -> list[Target]:
    """The targets a guard folder holds (its first target at the top level, then ``targets/``)."""
    def config(d: dict[str, Any]) -> GuardConfig:
        try:
            return GuardConfig(**d)
        except TypeError as exc:
            raise ForgetlabError(f"{path / 'guard.json'}: broken record ({exc})") from None

    first = Target(parts.name, parts.classifier, config(parts.config), parts.token_classifier, parts.fit)
    return [first, *(Target(t["name"], t["classifier"], config(t["config"]), t["token_classifier"], t["fit"])
                     for t in parts.targets)]

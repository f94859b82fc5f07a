"""``EcoGuard``: any local Hugging Face causal LM behind ECO's prompt classifier and embedding corruption.

A guard bundles the base model and tokenizer, a prompt classifier (``classify`` -> flags), an optional token
classifier (``GuardConfig.entity_tokens``: corrupt only the forget-entity characters of a flagged prompt;
``GuardConfig.flag_entities``: also flag every prompt naming a forget entity), and the corruption with its
fitted parameters (name, strength, k, seed). ``generate`` takes the same arguments as HF ``generate``; ``forward`` / ``answer_logprobs`` score teacher-forced sequences with only the prompt part
corrupted; ``prompt_embeddings`` gives the ``[T, d]`` embeddings a prompt-embeds backend (vLLM) should be fed.
Unflagged prompts never go through the corruption hook, so they get the base model's exact logits and outputs.

``save_pretrained(dir)`` writes one shippable folder: ``guard.json`` (config, fitted parameters, fit record,
versions, SHA-256 of every file), ``classifier/``, optional ``token_classifier/``, and the base model either copied
to ``model/`` or referenced by path with the checksums of its files. ``from_pretrained`` verifies all checksums
and raises :class:`ForgetlabError` naming the first file that does not match. Safetensors and JSON only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import BadInput, ForgetlabError
from ..runs import (
    atomic_write_json,
    folder_checksums,
    prepare_out_dir,
    read_json,
    run_record,
    verify_checksums,
)
from .corruptions import apply_rowwise, validate
from .hooks import corrupt_embeddings, hidden_size, input_embeddings, token_seed

FORMAT = "forgetlab.eco.EcoGuard"
FORMAT_VERSION = 2  # 2: GuardConfig.flag_entities / entity_tokens (version-1 folders still load)
WEIGHT_GLOBS = ("*.safetensors", "*.bin", "*.pt", "*.pth")


# ------------------------------------------------------------------------------------------ classifier types


def _prompt_classifier():
    from .classifier import PromptClassifier

    return PromptClassifier


def _token_classifier():
    from .classifier import TokenClassifier

    return TokenClassifier


# name -> function returning the class (lazy: the real classifier imports MiniLM). Tests register fakes here.
CLASSIFIER_TYPES: dict[str, Callable[[], type]] = {"prompt": _prompt_classifier}
TOKEN_CLASSIFIER_TYPES: dict[str, Callable[[], type]] = {"token": _token_classifier}


def register_classifier_type(name: str, cls: type, token: bool = False) -> None:
    """Make ``cls`` (with ``save_pretrained`` / ``from_pretrained``) loadable from a guard folder as ``name``."""
    (TOKEN_CLASSIFIER_TYPES if token else CLASSIFIER_TYPES)[name] = lambda: cls


def _type_name(obj: Any, registry: dict[str, Callable[[], type]], field: str) -> str:
    for name, get in registry.items():
        try:
            if type(obj) is get():
                return name
        except ImportError:
            continue
    raise BadInput(field, type(obj).__name__, "a registered classifier type: " + ", ".join(sorted(registry)))


# ------------------------------------------------------------------------------------------ files


def load_base_model(path: str | Path, *, dtype: torch.dtype | str | None = None, device: str | None = None):
    """Load ``(model, tokenizer)`` from a local HF folder (``local_files_only``), in eval mode.

    Bad input -> :class:`BadInput`: a missing folder, a folder without weights, an architecture without input
    embeddings. The tokenizer gets a pad token (eos) when it has none; generation pads on the left.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if not path.is_dir() or not (path / "config.json").is_file():
        raise BadInput("model", str(path), "a local Hugging Face model folder with config.json")
    if not any(any(path.glob(g)) for g in WEIGHT_GLOBS):
        raise BadInput("model", str(path), "a model folder with weights (model.safetensors or *.bin)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        kwargs = {"dtype": dtype} if dtype is not None else {}
        model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise ForgetlabError(f"model {path}: cannot load as a causal LM ({str(exc).splitlines()[0]})") from None
    input_embeddings(model)
    if device is not None:
        model = model.to(device)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return model.eval(), tokenizer


# ------------------------------------------------------------------------------------------ the guard


@dataclass
class GuardConfig:
    """What a guard does to a flagged prompt: the corruption, its fitted strength and k, the seed of its noise.

    With a token classifier: ``flag_entities`` also flags every prompt that mentions a forget entity (the flag
    rule is classifier OR entity match); ``entity_tokens`` corrupts only the spans the token classifier returns
    for a flagged prompt (its ``char_spans``: with ``fallback="all"`` the whole prompt when no entity is found),
    the whole prompt when False."""

    corruption: str
    strength: float = 0.0
    k: int = 0
    seed: int = 0
    flag_entities: bool = False
    entity_tokens: bool = True

    def __post_init__(self) -> None:
        for name in ("flag_entities", "entity_tokens"):
            if not isinstance(getattr(self, name), bool):
                raise BadInput(name, getattr(self, name), "true or false")


@dataclass
class FlagRule:
    """A guard's flag decision, usable without its base model: the prompt classifier's flag, OR a forget-entity
    mention when ``flag_entities`` (the classifier learns what forget prompts look like; the matcher knows
    whom they are about)."""

    classifier: Any
    token_classifier: Any = None
    flag_entities: bool = False

    def __post_init__(self) -> None:
        if self.flag_entities and self.token_classifier is None:
            raise BadInput("flag_entities", True, "false, or a guard with a token classifier to match names")

    def name_matches(self, prompts: Sequence[str]) -> np.ndarray:
        """``bool [B]``: which prompts name a forget entity (all False without ``flag_entities``)."""
        if not self.flag_entities:
            return np.zeros(len(prompts), dtype=bool)
        from .classifier import entity_flags

        return entity_flags(self.token_classifier, prompts)

    def flag(self, prompts: str | Sequence[str]) -> np.ndarray:
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        flags = np.asarray(self.classifier.flag(prompts), dtype=bool).reshape(len(prompts))
        return flags | self.name_matches(prompts)

    def parts(self, prompts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(classifier flags, classifier scores, name matches) ``[B]`` each, the classifier run once; the rule's
        flags are ``classifier flags | name matches`` (= :meth:`flag` for a ``score > threshold`` classifier)."""
        prompts = list(prompts)
        scores = np.asarray(self.classifier.score(prompts), dtype=float).reshape(len(prompts))
        threshold = getattr(self.classifier, "threshold", None)
        own = scores > threshold if threshold is not None else self.classifier.flag(prompts)
        return np.asarray(own, dtype=bool), scores, self.name_matches(prompts)


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

    def row_seeds(self, input_ids: torch.Tensor, mask: torch.Tensor) -> list[int]:
        """One noise seed per row: SHA-256 of (guard seed, the row's token ids at corrupted positions).

        A prompt therefore gets the same corruption alone or in any batch, with any padding, in ``generate``,
        ``forward`` and ``prompt_embeddings``; different prompts get different noise.
        """
        return [token_seed(self.config.seed, ids[m]) for ids, m in zip(input_ids.cpu(), mask.cpu(), strict=True)]

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

    def _row_token_mask(self, text: str, row_ids: list[int]) -> list[bool] | None:
        """Token mask (over ``row_ids``) from the token classifier; None: corrupt every prompt token."""
        if self.token_classifier is None or not self.config.entity_tokens:
            return None
        from .classifier import token_mask_from_spans

        spans = self.token_classifier.char_spans(text)
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = enc["input_ids"]
        n = len(row_ids)
        # the prompt ids may carry special tokens (BOS) in front: align the text's tokens at the end
        if n < len(ids) or row_ids[n - len(ids):] != ids:
            return None  # cannot align characters to these ids: be conservative, corrupt all
        return [False] * (n - len(ids)) + token_mask_from_spans(enc["offset_mapping"], spans)

    def corruption_mask(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                        flags: Sequence[bool], prompt_mask: torch.Tensor | None = None,
                        texts: Sequence[str] | None = None) -> torch.Tensor:
        """Positions to corrupt ``bool [B, T]``: prompt tokens of flagged rows (entity tokens with a token
        classifier). ``prompt_mask`` restricts to the prompt part of prompt+answer sequences."""
        B, T = input_ids.shape
        base = torch.ones(B, T, dtype=torch.bool) if attention_mask is None else attention_mask.bool().cpu()
        if prompt_mask is not None:
            base &= prompt_mask.bool().cpu()
        base &= torch.as_tensor(np.asarray(flags, dtype=bool)).view(B, 1)
        if self.token_classifier is not None and self.config.entity_tokens:
            texts = texts or [None] * B
            for b in range(B):
                if not base[b].any():
                    continue
                pos = base[b].nonzero().squeeze(-1)
                row = input_ids[b, pos].tolist()
                text = texts[b] if texts[b] is not None else self.tokenizer.decode(row, skip_special_tokens=True)
                tm = self._row_token_mask(text, row)
                if tm is not None:
                    base[b, pos] = torch.tensor(tm, dtype=torch.bool)
        return base

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
        p_ids = [self.tokenizer(p).input_ids for p in prompts]
        a_ids = [self.tokenizer(a, add_special_tokens=False).input_ids for a in answers]
        L = max(len(p) + len(a) for p, a in zip(p_ids, a_ids, strict=True))
        ids = torch.full((len(prompts), L), self.tokenizer.pad_token_id, dtype=torch.long)
        attn = torch.zeros_like(ids)
        for r, (p, a) in enumerate(zip(p_ids, a_ids, strict=True)):
            ids[r, :len(p) + len(a)] = torch.tensor(p + a)
            attn[r, :len(p) + len(a)] = 1
        logits = self.forward(ids, attn, flags=flags, prompt_lengths=[len(p) for p in p_ids]).logits
        logp = torch.log_softmax(logits.float(), -1).cpu()
        out = torch.zeros(len(prompts))
        for r, (p, a) in enumerate(zip(p_ids, a_ids, strict=True)):
            pos = torch.arange(len(p) - 1, len(p) + len(a) - 1)
            out[r] = logp[r, pos, torch.tensor(a)].sum()
        return out

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
        """Write the guard folder (see module doc); ``guard.json`` is written last, atomically."""
        if not copy_model and self.model_path is None:
            raise BadInput("copy_model", False, "True: this guard's model was not loaded from a folder")
        ctype = _type_name(self.classifier, CLASSIFIER_TYPES, "classifier")
        ttype = (_type_name(self.token_classifier, TOKEN_CLASSIFIER_TYPES, "token_classifier")
                 if self.token_classifier is not None else None)
        path = prepare_out_dir(path, overwrite=overwrite, field="out")
        self.classifier.save_pretrained(path / "classifier", overwrite=True)
        if self.token_classifier is not None:
            self.token_classifier.save_pretrained(path / "token_classifier", overwrite=True)
        if copy_model:
            self.model.save_pretrained(path / "model")
            self.tokenizer.save_pretrained(path / "model")
            model_ref, model_files = "model", {}
        else:
            model_ref, model_files = str(self.model_path), folder_checksums(self.model_path)
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION,
                **run_record(asdict(self.config), seed=self.config.seed),
                "classifier_type": ctype, "token_classifier_type": ttype,
                "model": {"path": model_ref, "copied": copy_model, "files": model_files},
                "fit": self.fit,
                "files": folder_checksums(path, exclude=("guard.json",))}
        atomic_write_json(path / "guard.json", meta)
        return path

    @staticmethod
    def load_classifier(path: str | Path):
        """Only the prompt classifier of a guard folder (checksums verified), without loading the base model."""
        path = Path(path)
        return _load_classifier(_read_guard_meta(path), path)

    @staticmethod
    def load_flag_rule(path: str | Path) -> FlagRule:
        """The flag rule of a guard folder (classifier, and the token classifier when the rule uses names),
        checksums verified, without loading the base model: what ``classify`` of the loaded guard does."""
        path = Path(path)
        meta = _read_guard_meta(path)
        config = _guard_config(meta, path)
        token_classifier = _load_token_classifier(meta, path) if config.flag_entities else None
        return FlagRule(_load_classifier(meta, path), token_classifier, config.flag_entities)

    @classmethod
    def from_pretrained(cls, path: str | Path, *, dtype=None, device: str | None = None,
                        verify: bool = True) -> EcoGuard:
        """Load a guard folder; every recorded checksum is verified first (``verify=False`` skips the base
        model's, e.g. for a huge referenced model already trusted)."""
        path = Path(path)
        meta = _read_guard_meta(path)
        config = _guard_config(meta, path)
        try:
            model_info = meta["model"]
        except (KeyError, TypeError) as exc:
            raise ForgetlabError(f"{path / 'guard.json'}: broken record ({exc})") from None
        model_dir = path / model_info["path"] if model_info.get("copied") else Path(model_info["path"])
        if verify and not model_info.get("copied"):
            if not model_dir.is_dir():
                raise ForgetlabError(f"guard {path}: its base model folder {model_dir} does not exist")
            verify_checksums(model_dir, model_info.get("files", {}), f"base model of guard {path}", "guard.json")
        classifier = _load_classifier(meta, path)
        token_classifier = _load_token_classifier(meta, path)
        model, tokenizer = load_base_model(model_dir, dtype=dtype, device=device)
        return cls(model, tokenizer, classifier, config, token_classifier=token_classifier,
                   model_path=model_dir, fit=meta.get("fit"))


def _guard_config(meta: dict, path: Path) -> GuardConfig:
    """``GuardConfig`` from ``guard.json`` (folders written before ``flag_entities``/``entity_tokens`` existed
    get their defaults: the classifier alone; entity tokens when a token classifier is present)."""
    try:
        return GuardConfig(**meta["config"])
    except (KeyError, TypeError) as exc:
        raise ForgetlabError(f"{path / 'guard.json'}: broken record ({exc})") from None


def _load_classifier(meta: dict, path: Path):
    ctype = meta.get("classifier_type")
    if ctype not in CLASSIFIER_TYPES:
        raise ForgetlabError(f"{path / 'guard.json'}: unknown classifier type {ctype!r}")
    return CLASSIFIER_TYPES[ctype]().from_pretrained(path / "classifier")


def _load_token_classifier(meta: dict, path: Path):
    ttype = meta.get("token_classifier_type")
    if ttype is None:
        return None
    if ttype not in TOKEN_CLASSIFIER_TYPES:
        raise ForgetlabError(f"{path / 'guard.json'}: unknown token classifier type {ttype!r}")
    return TOKEN_CLASSIFIER_TYPES[ttype]().from_pretrained(path / "token_classifier")


def _read_guard_meta(path: Path) -> dict:
    """``guard.json`` of a guard folder, after verifying the checksums of every file it lists."""
    if not path.is_dir():
        raise BadInput("guard", str(path), "a folder written by EcoGuard.save_pretrained")
    meta = read_json(path / "guard.json")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ForgetlabError(f"{path / 'guard.json'}: not an {FORMAT} record")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ForgetlabError(f"{path / 'guard.json'}: format_version {meta['format_version']} is newer than "
                             f"this forgetlab reads ({FORMAT_VERSION})")
    verify_checksums(path, meta.get("files", {}), f"guard {path}", "guard.json")
    return meta

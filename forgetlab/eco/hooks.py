"""Corrupt a Hugging Face model's input embeddings at flagged *prompt* positions only (ECO, Sec. 3.3).

:func:`corrupt_embeddings` is a context manager in the spirit of TransformerLens' ``with model.hooks(...)``: it
adds a forward hook on ``model.get_input_embeddings()`` and a pre/post hook pair on ``model`` itself, and removes
exactly those three handles on exit, even on exceptions; hooks anybody else registered stay.

Which positions are prompt positions is decided from the model's past length, not guessed from sequence lengths:
the pre-hook on ``model`` reads the ``cache_position`` of that forward call, else the KV cache passed to it
(``get_seq_length()``), else, for state-space and recurrent models (mamba's ``cache_params``, rwkv's ``state``),
the number of positions this generation embedded so far; an embedding call of ``t`` tokens covers absolute
positions ``[past, past + t)``. Only
positions ``< T_prompt`` (the width of the mask) can be corrupted; generated tokens never are, with or without
a cache. Without a cache, ``generate`` re-embeds the whole sequence every step: the corrupted prompt is computed
once and reused, so random corruptions stay consistent across steps (and equal a one-shot ``inputs_embeds``
reference). When ``generate`` expands the batch (``num_beams``, ``num_return_sequences``), rows are corrupted once
per prompt and repeated. Calls with ``inputs_embeds`` bypass the embedding layer and are not corrupted.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from ..errors import BadInput, ForgetlabError
from .corruptions import apply_rowwise, get_corruption, validate

MaskLike = torch.Tensor | Callable[[torch.Tensor], torch.Tensor]


def input_embeddings(model) -> torch.nn.Module:
    """``model.get_input_embeddings()``, or :class:`BadInput` when the architecture has none."""
    try:
        emb = model.get_input_embeddings()
    except (AttributeError, NotImplementedError):
        emb = None
    if not isinstance(emb, torch.nn.Module):
        raise BadInput("model", type(model).__name__,
                       "a causal LM with input embeddings (model.get_input_embeddings() returns a module)")
    return emb


def hidden_size(model) -> int:
    """Width ``d`` of the input embeddings of ``model``."""
    emb = input_embeddings(model)
    if getattr(emb, "embedding_dim", None):
        return int(emb.embedding_dim)
    return int(emb.weight.shape[-1])


def token_seed(seed: int, ids: torch.Tensor) -> int:
    """Noise seed for one row: SHA-256 of (``seed``, the row's token ids at corrupted positions) as int63.

    Seeding each row from its own tokens makes a prompt's corruption independent of the batch it is in.
    """
    h = hashlib.sha256(f"{int(seed)}:".encode())
    h.update(ids.detach().cpu().to(torch.int64).numpy().tobytes())
    return int.from_bytes(h.digest()[:8], "little") & (2**63 - 1)


CACHE_KWARGS = ("cache", "past_key_values", "cache_params", "state")
"""Where models receive what they already saw: KV caches (most), state-space caches (mamba: ``cache_params``),
recurrent states (rwkv: ``state``)."""


def _cached_length(cache) -> int | None:
    """Positions held by a KV cache (a ``transformers`` Cache or a legacy tuple); None when it cannot say (a
    state-space or recurrent cache, which holds a summary instead of positions)."""
    if hasattr(cache, "get_seq_length"):
        try:
            return int(cache.get_seq_length())
        except Exception:
            return None
    try:  # legacy ((k, v), ...) with k: [B, heads, past, d_head]
        return int(cache[0][0].shape[-2])
    except (IndexError, TypeError, AttributeError):
        return None


def _past_length(args: tuple, kwargs: dict, signature: inspect.Signature | None, consumed: int) -> int:
    """Absolute position of the first token of this forward call.

    ``cache_position`` says it directly when given; else a KV cache's length; else, when a state-space or
    recurrent state is passed, the positions this generation consumed so far; else 0 (a call without any cache
    re-reads the whole sequence).
    """
    bound = dict(kwargs)
    if signature is not None and len(args) > 1:
        try:
            bound = signature.bind_partial(*args, **kwargs).arguments
        except TypeError:
            pass
    position = bound.get("cache_position")
    if isinstance(position, torch.Tensor) and position.numel():
        return int(position.reshape(-1)[0])
    cache = next((bound[k] for k in CACHE_KWARGS if bound.get(k) is not None), None)
    if cache is None:
        return 0
    length = _cached_length(cache)
    return consumed if length is None else length


@dataclass
class CorruptionState:
    """What the hooks know while active: past length of the current forward, and the corrupted prompt."""

    prompt_len: int | None = None
    mask: torch.Tensor | None = None  # [B, T_prompt] bool
    past: int | None = None
    calls: int = 0
    corrupted_calls: int = 0
    consumed: int = 0  # positions embedded so far in this generation (for caches that do not count them)
    history: list[tuple[int, int, bool]] = field(default_factory=list)  # (past, tokens, corrupted) per call
    cache_ids: torch.Tensor | None = field(default=None, repr=False)
    cache_embeds: torch.Tensor | None = field(default=None, repr=False)


class _PromptCorrupter:
    """The embedding hook: corrupts the prompt positions an embedding call covers, given the past length.

    Which absolute positions a call covers comes from ``state.past`` (set by the model's pre-hook); a full
    prompt's corrupted embeddings are cached by its ids so re-embedding (no KV cache) reuses the same noise.
    """

    def __init__(self, state: CorruptionState, mask_fn: Callable | None, corruption: str, strength: float,
                 k: int, generator: torch.Generator | None, row_seeds: list[int] | None) -> None:
        self.state, self.mask_fn = state, mask_fn
        self.corruption, self.strength, self.k = corruption, float(strength), int(k)
        self.generator, self.row_seeds = generator, row_seeds
        self.fn = get_corruption(corruption).fn

    def corrupt(self, clean: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """``[B, n, d] -> [B, n, d]``: the corruption at ``m`` positions, per row seeds or one generator."""
        if self.row_seeds is not None:
            if len(self.row_seeds) != m.shape[0]:
                raise BadInput("row_seeds", len(self.row_seeds), f"one seed per mask row ({m.shape[0]})")
            return apply_rowwise(self.corruption, clean, m.to(clean.device), self.strength, self.k,
                                 self.row_seeds)
        return self.fn(clean, m.to(clean.device), self.strength, self.k, self.generator)

    def _define_prompt(self, ids: torch.Tensor | None, past: int) -> bool:
        """With a mask function, the first embedding call of the prompt defines the mask and its length."""
        state = self.state
        if state.mask is not None:
            return True
        if past != 0 or ids is None:
            return False
        m = self.mask_fn(ids)
        if not isinstance(m, torch.Tensor) or tuple(m.shape) != tuple(ids.shape):
            raise BadInput("mask", getattr(m, "shape", m), f"a bool tensor of shape {tuple(ids.shape)}")
        state.mask, state.prompt_len = m.to(torch.bool), ids.shape[1]
        return True

    def __call__(self, module, args, output):
        state = self.state
        state.calls += 1
        ids = args[0] if args else None
        past = state.past or 0
        state.consumed = past + output.shape[1]
        state.history.append((past, output.shape[1], False))
        if not self._define_prompt(ids, past) or past >= state.prompt_len:
            return None  # no prompt yet, or only generated tokens in this call
        T, B, b = state.prompt_len, state.mask.shape[0], output.shape[0]
        if b % B:
            raise ForgetlabError(f"corrupt_embeddings: {type(module).__name__} embedded a batch of {b}, not a "
                                 f"multiple of the prompts' {B} (models that embed time-major [T, B] inputs, "
                                 "such as xlnet, cannot be guarded)")
        r = b // B  # rows per prompt (beams, return sequences)
        t = output.shape[1]
        n = min(past + t, T) - past  # prompt positions covered by this call
        m = state.mask[:, past:past + n]
        if not m.any():
            return None
        clean = output[:, :n]
        if past == 0 and n == T and ids is not None:
            pid = ids[:, :T]
            if state.cache_ids is None or not torch.equal(state.cache_ids, pid):
                state.cache_embeds = self.corrupt(clean[::r], m).repeat_interleave(r, dim=0)
                state.cache_ids = pid.clone()
            # a copy every time: some models scale their embeddings in place (CTRL: `embeds *= sqrt(d)`)
            new = state.cache_embeds.clone()
        else:  # a partial prompt (chunked prefill): corrupt the covered slice
            new = self.corrupt(clean[::r], m).repeat_interleave(r, dim=0)
        state.corrupted_calls += 1
        state.history[-1] = (past, t, True)
        return torch.cat([new, output[:, n:]], dim=1) if n < t else new


@contextmanager
def corrupt_embeddings(model, mask: MaskLike, corruption: str, strength: float = 0.0, k: int = 0,
                       generator: torch.Generator | None = None,
                       row_seeds: list[int] | None = None) -> Iterator[CorruptionState]:
    """Within the block, corrupt ``model``'s input embeddings at ``mask`` positions of the prompt.

    ``mask``: bool ``[B, T_prompt]`` aligned with the (padded) prompt ``input_ids`` the model will see, or a
    function ``input_ids [B, T] -> bool [B, T]`` evaluated on the first call (whose length then defines the
    prompt). Rows with no true entry get exactly the base model's embeddings. Randomness: one ``generator`` for
    the batch, or ``row_seeds`` (one per mask row) to corrupt each row on its own
    (:func:`~forgetlab.eco.corruptions.apply_rowwise`: independent of batch and padding). Yields a
    :class:`CorruptionState`.
    """
    emb = input_embeddings(model)
    validate(corruption, torch.zeros(1, 1, hidden_size(model)), torch.zeros(1, 1, dtype=torch.bool), strength,
             k, generator if row_seeds is None else torch.Generator())
    state = CorruptionState()
    mask_fn = None
    if isinstance(mask, torch.Tensor):
        if mask.ndim != 2 or mask.dtype != torch.bool:
            raise BadInput("mask", (tuple(mask.shape), str(mask.dtype)), "a bool tensor [B, T_prompt]")
        state.mask, state.prompt_len = mask, mask.shape[1]
    elif callable(mask):
        mask_fn = mask
    else:
        raise BadInput("mask", type(mask).__name__, "a bool tensor [B, T_prompt] or a function of input_ids")
    seeds = None if row_seeds is None else [int(x) for x in row_seeds]
    corrupter = _PromptCorrupter(state, mask_fn, corruption, strength, k, generator, seeds)
    try:
        signature = inspect.signature(model.forward)
    except (TypeError, ValueError):  # pragma: no cover - exotic callables
        signature = None

    def pre_hook(module, args, kwargs):
        state.past = _past_length(args, kwargs, signature, state.consumed)

    def post_hook(module, args, output):
        state.past = None

    handles = []
    try:
        handles.append(model.register_forward_pre_hook(pre_hook, with_kwargs=True))
        handles.append(model.register_forward_hook(post_hook, always_call=True))
        handles.append(emb.register_forward_hook(corrupter))
        yield state
    finally:
        for h in handles:
            h.remove()

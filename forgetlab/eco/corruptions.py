"""Embedding corruptions of ECO (Liu et al. 2024, arXiv 2406.07933, Sec. 3.3 and App. C): pure, masked, by name.

Every corruption is a pure function ``fn(embeds [B, T, d], mask [B, T] bool, strength, k, generator) -> [B, T, d]``
that returns a new tensor, touches only positions where ``mask`` is true (unmasked positions are bit-for-bit
copies), keeps shape and dtype, and draws randomness only from the ``generator`` passed in.

Names follow the official ECO code where it has one (``rand_noise_first_n``, ``zero_out_top_k``...). "top-k" and
"least-k" always rank the dims of each token by magnitude ``|x|``. Which parameter a corruption uses (the strength
``sigma``/value, the number of dims ``k``, or neither) is recorded in its :class:`CorruptionSpec`, so fitting
knows which knob to turn.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import BadInput

CorruptionFn = Callable[[torch.Tensor, torch.Tensor, float, int, "torch.Generator | None"], torch.Tensor]


@dataclass(frozen=True)
class CorruptionSpec:
    """A registered corruption: its function and which of (strength, k, generator) it uses."""

    name: str
    fn: CorruptionFn
    uses_strength: bool
    uses_k: bool
    random: bool
    doc: str


CORRUPTIONS: dict[str, CorruptionSpec] = {}


def register(name: str, *, uses_strength: bool, uses_k: bool, random: bool) -> Callable[[CorruptionFn], CorruptionFn]:
    """Decorator adding a corruption function to :data:`CORRUPTIONS` under ``name``."""

    def deco(fn: CorruptionFn) -> CorruptionFn:
        doc = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        CORRUPTIONS[name] = CorruptionSpec(name, fn, uses_strength, uses_k, random, doc)
        return fn

    return deco


def get_corruption(name: str) -> CorruptionSpec:
    """The spec registered as ``name``; an unknown name is :class:`BadInput` listing the known names."""
    if name not in CORRUPTIONS:
        raise BadInput("corruption", name, "one of " + ", ".join(sorted(CORRUPTIONS)))
    return CORRUPTIONS[name]


def validate(name: str, embeds: torch.Tensor, mask: torch.Tensor, strength: float, k: int,
             generator: torch.Generator | None) -> CorruptionSpec:
    """Check every argument of a corruption call; raise :class:`BadInput` naming the first bad one."""
    spec = get_corruption(name)
    if embeds.ndim != 3:
        raise BadInput("embeds", tuple(embeds.shape), "a tensor of shape [B, T, d]")
    if tuple(mask.shape) != tuple(embeds.shape[:2]) or mask.dtype != torch.bool:
        raise BadInput("mask", (tuple(mask.shape), str(mask.dtype)),
                       f"a bool tensor of shape {tuple(embeds.shape[:2])}")
    if not isinstance(strength, (int, float)) or not math.isfinite(strength) or strength < 0:
        raise BadInput("strength", strength, "a finite number >= 0")
    d = embeds.shape[-1]
    if isinstance(k, bool) or not isinstance(k, int) or k < 0 or k > d:
        raise BadInput("k", k, f"an integer in [0, {d}] (the hidden size)")
    if spec.random and not isinstance(generator, torch.Generator):
        raise BadInput("generator", generator, f"a seeded torch.Generator ({name} draws random numbers)")
    return spec


def apply_corruption(name: str, embeds: torch.Tensor, mask: torch.Tensor, strength: float = 0.0, k: int = 0,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Validate and apply the corruption ``name``: ``[B, T, d] -> [B, T, d]``, only at ``mask`` positions."""
    spec = validate(name, embeds, mask, strength, k, generator)
    return spec.fn(embeds, mask, float(strength), int(k), generator)


# ----------------------------------------------------------------------------------------------- helpers


def _where(mask: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """``new`` at masked positions, ``old`` elsewhere (bit-for-bit), in ``old``'s dtype: ``[B, T, d]``."""
    return torch.where(mask.unsqueeze(-1), new.to(old.dtype), old)


def _randn(shape: tuple[int, ...], generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """Standard normal draws from ``generator`` (float32 on the generator's device), moved to ``like``."""
    z = torch.randn(shape, generator=generator, device=generator.device, dtype=torch.float32)
    return z.to(device=like.device)


def _first_k_dims(embeds: torch.Tensor, k: int) -> torch.Tensor:
    """Bool selector ``[B, T, d]`` of the first ``k`` dims of every token."""
    sel = torch.zeros(embeds.shape[-1], dtype=torch.bool, device=embeds.device)
    sel[:k] = True
    return sel.expand(embeds.shape)


def _magnitude_k_dims(embeds: torch.Tensor, k: int, largest: bool) -> torch.Tensor:
    """Bool selector ``[B, T, d]`` of each token's ``k`` dims of largest (or smallest) ``|x|``."""
    sel = torch.zeros(embeds.shape, dtype=torch.bool, device=embeds.device)
    if k == 0:
        return sel
    idx = embeds.abs().float().topk(k, dim=-1, largest=largest).indices
    return sel.scatter(-1, idx, True)


def _random_k_dims(embeds: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Bool selector ``[B, T, d]`` of ``k`` dims drawn at random (without replacement) for each token."""
    keys = torch.rand(embeds.shape, generator=generator, device=generator.device).to(embeds.device)
    sel = torch.zeros(embeds.shape, dtype=torch.bool, device=embeds.device)
    if k == 0:
        return sel
    return sel.scatter(-1, keys.topk(k, dim=-1).indices, True)


def _noise_on(embeds, mask, sel, strength, generator):
    """Add N(0, strength^2) noise on selected dims of masked tokens (computed in float32)."""
    noise = _randn(tuple(embeds.shape), generator, embeds) * strength
    new = embeds.float() + noise * sel
    return _where(mask, new, embeds)


# ----------------------------------------------------------------------------------------------- noise


@register("rand_noise_first_n", uses_strength=True, uses_k=True, random=True)
def rand_noise_first_n(embeds, mask, strength, k, generator):
    """Add Gaussian noise N(0, strength^2) to the first k dims of masked tokens."""
    return _noise_on(embeds, mask, _first_k_dims(embeds, k), strength, generator)


@register("rand_noise_rand_n", uses_strength=True, uses_k=True, random=True)
def rand_noise_rand_n(embeds, mask, strength, k, generator):
    """Add Gaussian noise N(0, strength^2) to k randomly chosen dims of each masked token."""
    sel = _random_k_dims(embeds, k, generator)
    return _noise_on(embeds, mask, sel, strength, generator)


@register("rand_noise_top_k", uses_strength=True, uses_k=True, random=True)
def rand_noise_top_k(embeds, mask, strength, k, generator):
    """Add Gaussian noise N(0, strength^2) to the k largest-magnitude dims of each masked token."""
    return _noise_on(embeds, mask, _magnitude_k_dims(embeds, k, True), strength, generator)


# ----------------------------------------------------------------------------------------------- zero / sign


@register("zero_out_first_n", uses_strength=False, uses_k=True, random=False)
def zero_out_first_n(embeds, mask, strength, k, generator):
    """Set the first k dims of masked tokens to zero (k is the strength knob)."""
    sel = _first_k_dims(embeds, k)
    return _where(mask, embeds.masked_fill(sel, 0), embeds)


@register("zero_out_top_k", uses_strength=False, uses_k=True, random=False)
def zero_out_top_k(embeds, mask, strength, k, generator):
    """Set the k largest-magnitude dims of each masked token to zero."""
    sel = _magnitude_k_dims(embeds, k, True)
    return _where(mask, embeds.masked_fill(sel, 0), embeds)


@register("flip_sign_first_n", uses_strength=False, uses_k=True, random=False)
def flip_sign_first_n(embeds, mask, strength, k, generator):
    """Flip the sign of the first k dims of masked tokens."""
    sel = _first_k_dims(embeds, k)
    return _where(mask, torch.where(sel, -embeds, embeds), embeds)


@register("flip_sign_top_k", uses_strength=False, uses_k=True, random=False)
def flip_sign_top_k(embeds, mask, strength, k, generator):
    """Flip the sign of the k largest-magnitude dims of each masked token."""
    sel = _magnitude_k_dims(embeds, k, True)
    return _where(mask, torch.where(sel, -embeds, embeds), embeds)


# ----------------------------------------------------------------------------------------------- add / sub


def _shift(embeds, mask, sel, value):
    new = embeds.float() + value * sel
    return _where(mask, new, embeds)


def _make_shift(name: str, sign: float, which: str) -> None:
    verb = "Subtract" if sign < 0 else "Add"
    where = {"top_k": "the k largest-magnitude dims", "least_k": "the k smallest-magnitude dims",
             "first_n": "the first k dims"}[which]

    def fn(embeds, mask, strength, k, generator):
        if which == "first_n":
            sel = _first_k_dims(embeds, k)
        else:
            sel = _magnitude_k_dims(embeds, k, which == "top_k")
        return _shift(embeds, mask, sel, sign * strength)

    fn.__name__ = name
    fn.__doc__ = f"{verb} the value ``strength`` on {where} of each masked token."
    register(name, uses_strength=True, uses_k=True, random=False)(fn)
    globals()[name] = fn


for _which in ("top_k", "least_k", "first_n"):
    _make_shift(f"sub_value_{_which}", -1.0, _which)
    _make_shift(f"add_value_{_which}", +1.0, _which)


# ----------------------------------------------------------------------------------------------- order


def _permute_masked(embeds: torch.Tensor, mask: torch.Tensor, order: Callable[[torch.Tensor], torch.Tensor]):
    """Permute the masked tokens of each row among themselves: ``order(positions) -> positions``."""
    out = embeds.clone()
    for b in range(embeds.shape[0]):
        pos = mask[b].nonzero().squeeze(-1)
        if pos.numel() > 1:
            out[b, pos] = embeds[b, order(pos)]
    return out


@register("shuffle_tokens", uses_strength=False, uses_k=False, random=True)
def shuffle_tokens(embeds, mask, strength, k, generator):
    """Shuffle the order of the masked tokens of each row (unmasked tokens stay in place)."""
    def order(pos):
        perm = torch.randperm(pos.numel(), generator=generator, device=generator.device).to(pos.device)
        return pos[perm]
    return _permute_masked(embeds, mask, order)


@register("reverse_tokens", uses_strength=False, uses_k=False, random=False)
def reverse_tokens(embeds, mask, strength, k, generator):
    """Reverse the order of the masked tokens of each row (unmasked tokens stay in place)."""
    return _permute_masked(embeds, mask, lambda pos: pos.flip(0))


def apply_rowwise(name: str, embeds: torch.Tensor, mask: torch.Tensor, strength: float = 0.0, k: int = 0,
                  seeds: list[int] | None = None) -> torch.Tensor:
    """Corrupt each row on its own: the masked tokens of row ``b`` are gathered into ``[1, n_b, d]`` and
    corrupted with a fresh generator seeded ``seeds[b]``: ``[B, T, d] -> [B, T, d]``.

    Same semantics as :func:`apply_corruption` (every corruption acts per token or among the masked tokens of a
    row), but the result of a row depends only on its masked tokens and its seed, not on the batch it is in
    nor on padding: a guard gives a prompt the same corruption alone or batched.
    """
    spec = validate(name, embeds, mask, strength, k, torch.Generator())
    if seeds is None or len(seeds) != embeds.shape[0]:
        raise BadInput("seeds", None if seeds is None else len(seeds), f"one seed per row ({embeds.shape[0]})")
    # one gather and one scatter for the whole batch (per-row indexing is slow on a busy multi-threaded CPU)
    flat = embeds[mask]  # [N, d], rows in order
    counts = mask.sum(dim=1).tolist()
    pieces, start = [], 0
    for b, n in enumerate(counts):
        if n == 0:
            continue
        gen = torch.Generator().manual_seed(int(seeds[b]))
        x = flat[start:start + n].unsqueeze(0)
        ones = torch.ones(1, n, dtype=torch.bool, device=embeds.device)
        pieces.append(spec.fn(x, ones, float(strength), int(k), gen)[0])
        start += n
    out = embeds.clone()
    if pieces:
        out[mask] = torch.cat(pieces)
    return out

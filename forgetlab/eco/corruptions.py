"""Embedding corruptions of ECO (Liu et al. 2024, arXiv 2406.07933, Sec. 3.3 and App. C): pure, masked, by name.

The functions live in :mod:`forgetlab.eco.corruption_ops`; this module states their contract, registers them
by name (lazily: listing the names needs no torch) and checks every call. Every corruption is a pure function ``fn(embeds [B, T, d], mask [B, T] bool, strength, k, generator) -> [B, T, d]``
that returns a new tensor, touches only positions where ``mask`` is true (unmasked positions are bit-for-bit
copies), keeps shape and dtype, and draws randomness only from the ``generator`` passed in.

Names follow the official ECO code (``rand_noise_first_n``, ``zero_out_top_k``...), whose names are accepted as
written (``reverse_order`` and ``shuffle`` are aliases of ``reverse_tokens`` and ``shuffle_tokens``, which, unlike
the reference, permute only the masked prompt tokens, so an answer is never moved). "top-k" and "least-k" rank
the dims of each token as the reference does: by magnitude ``|x|`` for noise, zeroing and sign flips, by signed
value for the add/sub corruptions (``sub_value_top_k`` lowers the largest values, ``add_value_least_k`` raises
the smallest). Which parameter a corruption uses (the strength
``sigma``/value, the number of dims ``k``, or neither) is recorded in its :class:`CorruptionSpec`, so fitting
knows which knob to turn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import BadInput
from ..registry import Registry, resolve

if TYPE_CHECKING:
    import torch

OPS_MODULE = "forgetlab.eco.corruption_ops"


@dataclass(frozen=True)
class CorruptionSpec:
    """A registered corruption: its name and which of (strength, k, generator) it uses; ``fn`` is loaded on
    first use from :mod:`forgetlab.eco.corruption_ops`, where it has the same name."""

    name: str
    uses_strength: bool
    uses_k: bool
    random: bool

    @property
    def fn(self) -> Any:
        return resolve(f"{OPS_MODULE}:{self.name}")

    @property
    def doc(self) -> str:
        """The first line of the function's docstring."""
        return (self.fn.__doc__ or "").strip().splitlines()[0] if self.fn.__doc__ else ""


def _specs(names: str, **knobs: bool) -> list[CorruptionSpec]:
    return [CorruptionSpec(n, **knobs) for n in names.split()]


CORRUPTIONS: Registry[CorruptionSpec] = Registry("corruption", {s.name: s for s in (
    *_specs("rand_noise_first_n rand_noise_rand_n rand_noise_top_k set_rand_noise_first_n", uses_strength=True,
            uses_k=True, random=True),
    *_specs("zero_out_first_n zero_out_top_k flip_sign_first_n flip_sign_top_k", uses_strength=False, uses_k=True,
            random=False),
    *_specs("sub_value_top_k add_value_top_k sub_value_least_k add_value_least_k sub_value_first_n "
            "add_value_first_n scale_first_n", uses_strength=True, uses_k=True, random=False),
    *_specs("shuffle_tokens", uses_strength=False, uses_k=False, random=True),
    *_specs("reverse_tokens", uses_strength=False, uses_k=False, random=False),
)})
"""Every corruption by name, with the knobs it uses."""
ALIASES = {"reverse_order": "reverse_tokens", "shuffle": "shuffle_tokens"}
"""The ECO reference's names for corruptions registered here under another name."""


def canonical(name: str) -> str:
    """The registered name of ``name`` (an alias resolved), checked: unknown names list the known ones."""
    name = ALIASES.get(name, name)
    if name not in CORRUPTIONS:
        raise BadInput("corruption", name, "one of " + ", ".join(sorted([*CORRUPTIONS.names(), *ALIASES])))
    return name


def get_corruption(name: str) -> CorruptionSpec:
    """The spec registered as ``name`` or one of its :data:`ALIASES`; an unknown name lists the known names."""
    return CORRUPTIONS.get(canonical(name))


def validate(name: str, embeds, mask, strength: float, k: int, generator) -> CorruptionSpec:
    """Check every argument of a corruption call; raise :class:`BadInput` naming the first bad one."""
    import torch

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


def apply_corruption(name: str, embeds, mask, strength: float = 0.0, k: int = 0, generator=None):
    """Validate and apply the corruption ``name``: ``[B, T, d] -> [B, T, d]``, only at ``mask`` positions."""
    spec = validate(name, embeds, mask, strength, k, generator)
    return spec.fn(embeds, mask, float(strength), int(k), generator)


def apply_rowwise(name: str, embeds: torch.Tensor, mask: torch.Tensor, strength: float = 0.0, k: int = 0,
                  seeds: list[int] | None = None) -> torch.Tensor:
    """Corrupt each row on its own: the masked tokens of row ``b`` are gathered into ``[1, n_b, d]`` and
    corrupted with a fresh generator seeded ``seeds[b]``: ``[B, T, d] -> [B, T, d]``.

    Same semantics as :func:`apply_corruption` (every corruption acts per token or among the masked tokens of a
    row), but the result of a row depends only on its masked tokens and its seed, not on the batch it is in
    nor on padding: a guard gives a prompt the same corruption alone or batched.
    """
    import torch

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

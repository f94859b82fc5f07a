"""The corruption functions themselves (see :mod:`forgetlab.eco.corruptions` for the contract and the registry).

Each is ``fn(embeds [B, T, d], mask [B, T] bool, strength, k, generator) -> [B, T, d]``: a new tensor, only
``mask`` positions changed (others bit-for-bit copies), shape and dtype kept, randomness only from
``generator``. Named as in the official ECO code where it has one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

CorruptionFn = Callable[[torch.Tensor, torch.Tensor, float, int, "torch.Generator | None"], torch.Tensor]


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
    return _ranked_k_dims(embeds.abs(), k, largest)


def _ranked_k_dims(values: torch.Tensor, k: int, largest: bool) -> torch.Tensor:
    """Bool selector ``[B, T, d]`` of each token's ``k`` dims of largest (or smallest) ``values``."""
    sel = torch.zeros(values.shape, dtype=torch.bool, device=values.device)
    if k == 0:
        return sel
    idx = values.float().topk(k, dim=-1, largest=largest).indices
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


def rand_noise_first_n(embeds, mask, strength, k, generator):
    """Add Gaussian noise N(0, strength^2) to the first k dims of masked tokens."""
    return _noise_on(embeds, mask, _first_k_dims(embeds, k), strength, generator)


def rand_noise_rand_n(embeds, mask, strength, k, generator):
    """Add Gaussian noise N(0, strength^2) to k randomly chosen dims of each masked token."""
    sel = _random_k_dims(embeds, k, generator)
    return _noise_on(embeds, mask, sel, strength, generator)


def rand_noise_top_k(embeds, mask, strength, k, generator):
    """Add Gaussian noise N(0, strength^2) to the k largest-magnitude dims of each masked token."""
    return _noise_on(embeds, mask, _magnitude_k_dims(embeds, k, True), strength, generator)


# ----------------------------------------------------------------------------------------------- zero / sign


def set_rand_noise_first_n(embeds, mask, strength, k, generator):
    """Replace the first k dims of masked tokens by Gaussian noise N(0, strength^2)."""
    noise = _randn(tuple(embeds.shape), generator, embeds) * strength
    sel = _first_k_dims(embeds, k)
    return _where(mask, torch.where(sel, noise, embeds.float()), embeds)


def zero_out_first_n(embeds, mask, strength, k, generator):
    """Set the first k dims of masked tokens to zero (k is the strength knob)."""
    sel = _first_k_dims(embeds, k)
    return _where(mask, embeds.masked_fill(sel, 0), embeds)


def zero_out_top_k(embeds, mask, strength, k, generator):
    """Set the k largest-magnitude dims of each masked token to zero."""
    sel = _magnitude_k_dims(embeds, k, True)
    return _where(mask, embeds.masked_fill(sel, 0), embeds)


def flip_sign_first_n(embeds, mask, strength, k, generator):
    """Flip the sign of the first k dims of masked tokens."""
    sel = _first_k_dims(embeds, k)
    return _where(mask, torch.where(sel, -embeds, embeds), embeds)


def flip_sign_top_k(embeds, mask, strength, k, generator):
    """Flip the sign of the k largest-magnitude dims of each masked token."""
    sel = _magnitude_k_dims(embeds, k, True)
    return _where(mask, torch.where(sel, -embeds, embeds), embeds)


def scale_first_n(embeds, mask, strength, k, generator):
    """Multiply the first k dims of masked tokens by ``1 - strength``: one path through zeroing (1), the sign
    flip (2) and beyond, so a strength fit can land between them."""
    sel = _first_k_dims(embeds, k)
    return _where(mask, torch.where(sel, embeds.float() * (1.0 - strength), embeds.float()), embeds)


# ----------------------------------------------------------------------------------------------- add / sub


def _shift(embeds, mask, sel, value):
    new = embeds.float() + value * sel
    return _where(mask, new, embeds)


def _shift_fn(name: str, sign: float, which: str) -> CorruptionFn:
    """The corruption that adds ``sign * strength`` on ``which`` dims (top_k, least_k or first_n)."""
    verb = "Subtract" if sign < 0 else "Add"
    where = {"top_k": "the k largest (signed) dims", "least_k": "the k smallest (signed) dims",
             "first_n": "the first k dims"}[which]

    def fn(embeds, mask, strength, k, generator):
        if which == "first_n":
            sel = _first_k_dims(embeds, k)
        else:  # signed values, as the ECO reference ranks them for its add/sub corruptions
            sel = _ranked_k_dims(embeds, k, which == "top_k")
        return _shift(embeds, mask, sel, sign * strength)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"{verb} the value ``strength`` on {where} of each masked token."
    return fn


sub_value_top_k = _shift_fn("sub_value_top_k", -1.0, "top_k")
add_value_top_k = _shift_fn("add_value_top_k", +1.0, "top_k")
sub_value_least_k = _shift_fn("sub_value_least_k", -1.0, "least_k")
add_value_least_k = _shift_fn("add_value_least_k", +1.0, "least_k")
sub_value_first_n = _shift_fn("sub_value_first_n", -1.0, "first_n")
add_value_first_n = _shift_fn("add_value_first_n", +1.0, "first_n")


# ----------------------------------------------------------------------------------------------- order


def _permute_masked(embeds: torch.Tensor, mask: torch.Tensor, order: Callable[[torch.Tensor], torch.Tensor]):
    """Permute the masked tokens of each row among themselves: ``order(positions) -> positions``."""
    out = embeds.clone()
    for b in range(embeds.shape[0]):
        pos = mask[b].nonzero().squeeze(-1)
        if pos.numel() > 1:
            out[b, pos] = embeds[b, order(pos)]
    return out


def shuffle_tokens(embeds, mask, strength, k, generator):
    """Shuffle the order of the masked tokens of each row (unmasked tokens stay in place)."""
    def order(pos):
        perm = torch.randperm(pos.numel(), generator=generator, device=generator.device).to(pos.device)
        return pos[perm]
    return _permute_masked(embeds, mask, order)


def reverse_tokens(embeds, mask, strength, k, generator):
    """Reverse the order of the masked tokens of each row (unmasked tokens stay in place)."""
    return _permute_masked(embeds, mask, lambda pos: pos.flip(0))

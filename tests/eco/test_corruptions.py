"""Property tests of the ECO corruptions: masked-only, shape/dtype kept, identities, determinism, bad input."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from forgetlab.eco.corruptions import CORRUPTIONS, apply_corruption, apply_rowwise, get_corruption
from forgetlab.errors import BadInput

NAMES = sorted(CORRUPTIONS)


def _inputs(seed: int, B: int = 3, T: int = 7, d: int = 16, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, d, generator=g).to(dtype)
    mask = torch.rand(B, T, generator=g) < 0.5
    mask[0] = False  # a fully unflagged row
    mask[1, :3] = True
    return x, mask


def test_registry_has_every_issue_corruption():
    expected = {"rand_noise_first_n", "rand_noise_rand_n", "rand_noise_top_k", "zero_out_first_n",
                "zero_out_top_k", "flip_sign_first_n", "flip_sign_top_k", "sub_value_top_k", "add_value_top_k",
                "sub_value_least_k", "add_value_least_k", "sub_value_first_n", "add_value_first_n",
                "shuffle_tokens", "reverse_tokens"}
    assert expected <= set(CORRUPTIONS)


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(NAMES), seed=st.integers(0, 10_000), k=st.integers(1, 16),
       strength=st.floats(0.1, 5.0), dtype=st.sampled_from([torch.float32, torch.bfloat16, torch.float16]))
def test_only_masked_positions_change_and_shape_dtype_kept(name, seed, k, strength, dtype):
    x, mask = _inputs(seed, dtype=dtype)
    before = x.clone()
    y = apply_corruption(name, x, mask, strength, k, torch.Generator().manual_seed(seed))
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.equal(x, before), "input must not be modified in place"
    keep = ~mask
    assert torch.equal(y[keep], x[keep]), "unmasked positions must be bit-for-bit untouched"


@pytest.mark.parametrize("name", NAMES)
def test_masked_positions_do_change(name):
    x, mask = _inputs(1)
    y = apply_corruption(name, x, mask, 2.0, 8, torch.Generator().manual_seed(0))
    assert not torch.equal(y[mask], x[mask])


@pytest.mark.parametrize("name", [n for n in NAMES if CORRUPTIONS[n].uses_strength
                                  and n != "set_rand_noise_first_n"])  # that one replaces values by noise
def test_strength_zero_is_identity(name):
    x, mask = _inputs(2)
    y = apply_corruption(name, x, mask, 0.0, 8, torch.Generator().manual_seed(0))
    assert torch.equal(x, y)


@pytest.mark.parametrize("name", [n for n in NAMES if CORRUPTIONS[n].uses_k])
def test_k_zero_is_identity(name):
    x, mask = _inputs(3)
    y = apply_corruption(name, x, mask, 3.0, 0, torch.Generator().manual_seed(0))
    assert torch.equal(x, y)


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_given_generator(name):
    x, mask = _inputs(4)
    a = apply_corruption(name, x, mask, 1.5, 5, torch.Generator().manual_seed(7))
    b = apply_corruption(name, x, mask, 1.5, 5, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    if CORRUPTIONS[name].random:
        c = apply_corruption(name, x, mask, 1.5, 5, torch.Generator().manual_seed(8))
        assert not torch.equal(a, c)


def test_hand_computed_values():
    x = torch.tensor([[[1.0, -5.0, 2.0, 0.5], [3.0, 1.0, -1.0, 4.0]]])
    mask = torch.tensor([[True, False]])
    zero = apply_corruption("zero_out_top_k", x, mask, 0.0, 2)
    assert zero[0, 0].tolist() == [1.0, 0.0, 0.0, 0.5] and torch.equal(zero[0, 1], x[0, 1])
    flip = apply_corruption("flip_sign_first_n", x, mask, 0.0, 3)
    assert flip[0, 0].tolist() == [-1.0, 5.0, -2.0, 0.5]
    add = apply_corruption("add_value_first_n", x, mask, 2.0, 1)
    assert add[0, 0].tolist() == [3.0, -5.0, 2.0, 0.5]


def test_add_sub_rank_signed_values_as_the_reference():
    """The ECO reference ranks by value (not magnitude) for its add/sub corruptions: sub_value_top_k lowers the
    largest values, add_value_least_k raises the smallest (most negative) ones."""
    x = torch.tensor([[[1.0, -5.0, 2.0, 0.5], [3.0, 1.0, -1.0, 4.0]]])
    mask = torch.tensor([[True, False]])
    assert apply_corruption("sub_value_top_k", x, mask, 1.0, 2)[0, 0].tolist() == [0.0, -5.0, 1.0, 0.5]
    assert apply_corruption("add_value_least_k", x, mask, 1.0, 1)[0, 0].tolist() == [1.0, -4.0, 2.0, 0.5]
    assert apply_corruption("sub_value_least_k", x, mask, 1.0, 1)[0, 0].tolist() == [1.0, -6.0, 2.0, 0.5]
    assert apply_corruption("add_value_top_k", x, mask, 1.0, 1)[0, 0].tolist() == [1.0, -5.0, 3.0, 0.5]
    # magnitude for the others: the largest |x| is -5.0
    assert apply_corruption("flip_sign_top_k", x, mask, 0.0, 1)[0, 0].tolist() == [1.0, 5.0, 2.0, 0.5]


def test_reference_names_and_set_noise():
    x = torch.arange(6.0).view(1, 6, 1).expand(1, 6, 2).contiguous()
    mask = torch.tensor([[False, True, True, False, True, False]])
    assert torch.equal(apply_corruption("reverse_order", x, mask), apply_corruption("reverse_tokens", x, mask))
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert torch.equal(apply_corruption("shuffle", x, mask, generator=g()),
                       apply_corruption("shuffle_tokens", x, mask, generator=g()))
    y = torch.ones(1, 2, 8)
    z = apply_corruption("set_rand_noise_first_n", y, torch.tensor([[True, False]]), 0.0, 3, g())
    assert z[0, 0].tolist() == [0.0] * 3 + [1.0] * 5 and torch.equal(z[0, 1], y[0, 1])


def test_order_corruptions_permute_only_masked_tokens():
    x = torch.arange(6.0).view(1, 6, 1).expand(1, 6, 2).contiguous()
    mask = torch.tensor([[False, True, True, False, True, False]])
    rev = apply_corruption("reverse_tokens", x, mask)
    assert rev[0, :, 0].tolist() == [0.0, 4.0, 2.0, 3.0, 1.0, 5.0]
    shuf = apply_corruption("shuffle_tokens", x, mask, generator=torch.Generator().manual_seed(0))
    assert sorted(shuf[0, [1, 2, 4], 0].tolist()) == [1.0, 2.0, 4.0]
    assert shuf[0, [0, 3, 5], 0].tolist() == [0.0, 3.0, 5.0]


def test_noise_has_requested_scale():
    x = torch.zeros(4, 256, 64)
    mask = torch.ones(4, 256, dtype=torch.bool)
    y = apply_corruption("rand_noise_first_n", x, mask, 2.0, 16, torch.Generator().manual_seed(0))
    assert abs(y[..., :16].std().item() - 2.0) < 0.05
    assert torch.equal(y[..., 16:], x[..., 16:])


def test_bad_inputs_name_the_field():
    x, mask = _inputs(5)
    g = torch.Generator().manual_seed(0)
    with pytest.raises(BadInput, match="k: got 17"):
        apply_corruption("rand_noise_first_n", x, mask, 1.0, 17, g)
    with pytest.raises(BadInput, match=r"strength: got -1\.0"):
        apply_corruption("rand_noise_first_n", x, mask, -1.0, 4, g)
    with pytest.raises(BadInput, match="strength"):
        apply_corruption("rand_noise_first_n", x, mask, float("nan"), 4, g)
    with pytest.raises(BadInput, match="rand_noise_first_n"):  # lists the known names
        get_corruption("no_such_corruption")
    with pytest.raises(BadInput, match="mask"):
        apply_corruption("zero_out_top_k", x, mask[:, :3], 0.0, 4)
    with pytest.raises(BadInput, match="generator"):
        apply_corruption("rand_noise_top_k", x, mask, 1.0, 4, None)


@pytest.mark.parametrize("name", NAMES)
def test_rowwise_is_independent_of_batch_and_padding(name):
    x, mask = _inputs(6)
    y = apply_rowwise(name, x, mask, 1.5, 5, seeds=[1, 2, 3])
    assert torch.equal(y[~mask], x[~mask])
    # row 1 alone, shifted right by 2 positions of padding: same corrupted tokens
    pad = torch.zeros(1, 2, x.shape[-1])
    alone_x = torch.cat([pad, x[1:2]], dim=1)
    alone_m = torch.cat([torch.zeros(1, 2, dtype=torch.bool), mask[1:2]], dim=1)
    alone = apply_rowwise(name, alone_x, alone_m, 1.5, 5, seeds=[2])
    assert torch.equal(alone[0, 2:], y[1])
    full = torch.ones(1, 7, dtype=torch.bool)
    assert torch.equal(apply_rowwise(name, x[:1], full, 1.5, 5, seeds=[9]),
                       apply_corruption(name, x[:1], full, 1.5, 5, torch.Generator().manual_seed(9)))
    with pytest.raises(BadInput, match="seeds"):
        apply_rowwise(name, x, mask, 1.5, 5, seeds=[1])


def test_scale_first_n_passes_through_zeroing_and_the_flip():
    """x -> (1 - s) x on the first k dims: s = 1 is zero_out_first_n, s = 2 is flip_sign_first_n, s = 0.5 halves."""
    x, mask = _inputs(5)
    for s, other in ((1.0, "zero_out_first_n"), (2.0, "flip_sign_first_n")):
        assert torch.equal(apply_corruption("scale_first_n", x, mask, s, 6), apply_corruption(other, x, mask, 0.0, 6))
    half = apply_corruption("scale_first_n", x, mask, 0.5, 6)
    assert torch.allclose(half[mask][:, :6], x[mask][:, :6] * 0.5) and torch.equal(half[mask][:, 6:], x[mask][:, 6:])

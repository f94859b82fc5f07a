"""The bagged backward of the MLP kernel (forgetlab.grok.kernel.row_bags): the gradient flowing back to the
rows of E equals two ``index_add_`` calls bit for bit, and padding rows are left out."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from forgetlab.grok.kernel import flat_index, row_bags


def _index_add(da: torch.Tensor, gm: torch.Tensor, gn: torch.Tensor, n_dest: int) -> torch.Tensor:
    out = torch.zeros(n_dest, da.shape[1])
    out.index_add_(0, gm, da)
    return out.index_add_(0, gn, da)


def test_bags_sum_like_index_add_bit_for_bit():
    g = torch.Generator().manual_seed(0)
    R, B, p, N = 3, 50, 7, 16
    M, Nn = torch.randint(0, p, (R, B), generator=g), torch.randint(0, p, (R, B), generator=g)
    gm, gn = flat_index(M, Nn, p)
    da = torch.randn(R * B, N, generator=g)
    bags = row_bags(gm, gn, R * 2 * p)
    got = F.embedding_bag(bags.rows, da, bags.offsets, mode="sum")
    assert torch.equal(got, _index_add(da, gm, gn, R * 2 * p))
    assert bags.offsets.shape == (R * 2 * p,) and bags.rows.shape == (2 * R * B,)


def test_padding_rows_are_left_out_and_unused_rows_get_zero():
    p, N = 5, 4
    M = torch.tensor([[0, 1, 1, 4]])
    Nn = torch.tensor([[2, 2, 3, 0]])
    gm, gn = flat_index(M, Nn, p)
    da = torch.arange(16.0).view(4, N) + 1
    valid = torch.tensor([True, True, True, False])  # the last row is padding
    bags = row_bags(gm, gn, 2 * p, valid)
    got = F.embedding_bag(bags.rows, da, bags.offsets, mode="sum")
    want = _index_add(da[:3], gm[:3], gn[:3], 2 * p)
    assert torch.equal(got, want)
    assert torch.equal(got[4], torch.zeros(N)) and torch.equal(got[p + 0], torch.zeros(N))  # only padding used them

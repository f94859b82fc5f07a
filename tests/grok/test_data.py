import random

import pytest
import torch

from forgetlab.errors import BadInput
from forgetlab.grok.data import make_dataset


def test_counts_and_corruption():
    ds = make_dataset(23, "add", 0.5, 0.4, split_seed=3, label_seed=4)
    assert ds.size == 529 and ds.n_train == int(0.5 * 529) and ds.n_corrupted == int(0.4 * ds.n_train)
    assert torch.equal(ds.y_true, (ds.m + ds.n) % 23)
    # labels outside the corrupted prefix are clean; test labels never corrupted
    assert torch.equal(ds.y[ds.n_corrupted:], ds.y_true[ds.n_corrupted:])
    same = int((ds.y[: ds.n_corrupted] == ds.y_true[: ds.n_corrupted]).sum())
    assert same == ds.n_corrupted_unchanged
    assert ds.n_corrupted - same > 0.8 * ds.n_corrupted  # about 1/p of draws stay unchanged
    # every pair exactly once
    assert len(set(zip(ds.m.tolist(), ds.n.tolist(), strict=True))) == 529


def test_determinism_and_seeds():
    a = make_dataset(23, "mul", 0.3, 0.2, split_seed=1, label_seed=2)
    b = make_dataset(23, "mul", 0.3, 0.2, split_seed=1, label_seed=2)
    c = make_dataset(23, "mul", 0.3, 0.2, split_seed=5, label_seed=2)
    d = make_dataset(23, "mul", 0.3, 0.2, split_seed=1, label_seed=9)
    assert torch.equal(a.m, b.m) and torch.equal(a.y, b.y)
    assert not torch.equal(a.m, c.m)
    assert torch.equal(a.m, d.m) and not torch.equal(a.y, d.y)


def test_official_shuffle_and_labels():
    """Defaults replicate the official code: random.seed(420) shuffle and torch.manual_seed(0) labels."""
    p = 23
    ds = make_dataset(p, "add", 0.5, 0.35)
    pairs = [(i, j) for i in range(p) for j in range(p)]
    order = list(range(len(pairs)))
    random.Random(420).shuffle(order)
    assert [pairs[k] for k in order][:50] == list(zip(ds.m.tolist(), ds.n.tolist(), strict=True))[:50]
    n_noise = int(0.35 * int(0.5 * p * p))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        ref = torch.randint(0, p, (n_noise,))
    assert torch.equal(ds.y[:n_noise], ref)


@pytest.mark.parametrize("op,fn", [("sub", lambda m, n, p: (m - n) % p), ("mul", lambda m, n, p: (m * n) % p)])
def test_ops(op, fn):
    ds = make_dataset(31, op, 0.5, 0.0)
    assert torch.equal(ds.y_true, fn(ds.m, ds.n, 31))


def test_division():
    ds = make_dataset(31, "div", 0.5, 0.0)
    assert ds.size == 31 * 30 and int((ds.n == 0).sum()) == 0
    assert torch.equal((ds.y_true * ds.n) % 31, ds.m)


@pytest.mark.parametrize("kw,field", [
    (dict(p=21, op="div"), "p"), (dict(p=2), "p"), (dict(alpha=1.0), "alpha"), (dict(alpha=-0.1), "alpha"),
    (dict(alpha=0.0), "alpha"), (dict(xi=1.0), "xi"), (dict(xi=-0.5), "xi"), (dict(op="pow"), "op"),
])
def test_bad_input(kw, field):
    args = dict(p=23, op="add", alpha=0.5, xi=0.3) | kw
    with pytest.raises(BadInput) as e:
        make_dataset(**args)
    assert e.value.field == field

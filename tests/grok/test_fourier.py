import math

import torch

from forgetlab.grok.data import make_dataset
from forgetlab.grok.fourier import analytic_solution, ipr, mean_ipr, neuron_ipr
from forgetlab.grok.models import MLP


def test_ipr_cosine_onehot_gaussian():
    p = 31
    i = torch.arange(p, dtype=torch.float32)
    cos = torch.cos(2 * math.pi * 3 * i / p + 0.7)
    assert abs(float(ipr(cos)) - 1.0) < 1e-5
    onehot = torch.zeros(p)
    onehot[4] = 1.0
    assert abs(float(ipr(onehot)) - 1.0 / (p // 2 + 1)) < 1e-6
    g = torch.randn(2000, 97, generator=torch.Generator().manual_seed(0))
    assert 0.02 < float(ipr(g).mean()) < 0.07
    assert float(ipr(torch.zeros(p))) == 0.0


def test_neuron_ipr_vectorized_over_runs():
    gen = torch.Generator().manual_seed(1)
    U, V, W = torch.randn(3, 16, 23, generator=gen), torch.randn(3, 16, 23, generator=gen), \
        torch.randn(3, 23, 16, generator=gen)
    out = neuron_ipr(U, V, W)
    assert out.shape == (3, 16)
    r, k = 2, 5
    ref = (ipr(U[r, k]) + ipr(V[r, k]) + ipr(W[r, :, k])) / 3
    assert torch.allclose(out[r, k], ref)


def test_analytic_solution_is_perfect_and_periodic():
    p, N = 31, 128
    U, V, W = analytic_solution(p, N, torch.Generator().manual_seed(0))
    model = MLP(p, N)
    with torch.no_grad():
        model.U.copy_(U), model.V.copy_(V), model.W.copy_(W)
        ds = make_dataset(p, "add", 0.5, 0.0)
        pred = model(ds.m, ds.n).argmax(-1)
    assert bool((pred == ds.y_true).all())
    assert float(mean_ipr(U, V, W)) > 0.99

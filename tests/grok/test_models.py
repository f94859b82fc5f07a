import torch

from forgetlab.grok.data import make_dataset
from forgetlab.grok.models import MLP, Transformer, init_mlp_weights, init_std


def test_gather_equals_onehot_matmul():
    ds = make_dataset(23, "add", 0.5, 0.2)
    for kw in (dict(act="quadratic"), dict(act="relu"), dict(batchnorm=True)):
        model = MLP(23, 64, generator=torch.Generator().manual_seed(3), **kw).eval()
        with torch.no_grad():
            a = model(ds.m, ds.n)
            b = model.forward_onehot(ds.one_hot_inputs())
        assert a.shape == (529, 23)
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)


def test_init_matches_official_random_stream():
    """torch.manual_seed(1); nn.Linear x2; normal_ x2 (official fcn) gives our initial weights."""
    p, N = 23, 40
    with torch.random.fork_rng():
        torch.manual_seed(1)
        fc1 = torch.nn.Linear(2 * p, N, bias=False)
        fc2 = torch.nn.Linear(N, p, bias=False)
        torch.nn.init.normal_(fc1.weight, 0.0, init_std(N))
        torch.nn.init.normal_(fc2.weight, 0.0, init_std(N))
    U, V, W = init_mlp_weights(p, N, torch.Generator().manual_seed(1))
    assert torch.equal(U, fc1.weight.data[:, :p]) and torch.equal(V, fc1.weight.data[:, p:])
    assert torch.equal(W, fc2.weight.data)
    assert abs(float(W.std()) - 0.5 / (2 * N) ** (1 / 3)) < 0.02


def test_transformer_shapes_and_determinism():
    ds = make_dataset(23, "add", 0.5, 0.0)
    a = Transformer(23, generator=torch.Generator().manual_seed(0))
    b = Transformer(23, generator=torch.Generator().manual_seed(0))
    out = a(ds.m[:7], ds.n[:7])
    assert out.shape == (7, 23)
    assert torch.equal(out, b(ds.m[:7], ds.n[:7]))
    U, _, W = a.ipr_views()
    assert U.shape == (128, 23) and W.shape == (23, 128)

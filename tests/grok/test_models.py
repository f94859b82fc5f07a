import torch

from forgetlab.grok.data import make_dataset
from forgetlab.grok.models import MLP, Transformer, init_deep_weights, init_mlp_weights, init_std


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
    assert a.weights["wte"].shape == (23, 128) and a.weights["head"].shape == (23, 128)


def test_deep_mlp_initial_weights_equal_the_official_deep_mlp():
    """The official `fcn_norm_only` stream: bias-free nn.Linear layers constructed in order, re-drawn with
    kaiming_normal_(fan_in, relu), the last layer halved."""
    p, N = 11, 24
    torch.manual_seed(4)
    layers = [torch.nn.Linear(2 * p, N, bias=False), torch.nn.Linear(N, N, bias=False),
              torch.nn.Linear(N, p, bias=False)]
    for layer in layers:
        torch.nn.init.kaiming_normal_(layer.weight, a=0, mode="fan_in", nonlinearity="relu")
    layers[-1].weight.data *= 0.5
    U, V, hidden, W = init_deep_weights(p, N, 3, torch.Generator().manual_seed(4))
    assert torch.equal(torch.cat([U, V], 1), layers[0].weight.data)
    assert len(hidden) == 1 and torch.equal(hidden[0], layers[1].weight.data)
    assert torch.equal(W, layers[2].weight.data)

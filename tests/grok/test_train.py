import pytest
import torch

from forgetlab.errors import BadInput
from forgetlab.grok.config import TrainConfig, batch_key
from forgetlab.grok.kernel import (
    StackedAdamW,
    batched_forward,
    fast_grads,
    flat_index,
    per_example_loss,
    row_bags,
)
from forgetlab.grok.train import estimate_batch_bytes, train, train_many


def _random_problem(R=3, p=13, N=24, B=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    E = torch.randn(R, 2 * p, N, generator=g) * 0.3
    Wt = torch.randn(R, N, p, generator=g) * 0.3
    M = torch.randint(0, p, (R, B), generator=g)
    Nn = torch.randint(0, p, (R, B), generator=g)
    Y = torch.randint(0, p, (R, B), generator=g)
    n_valid = torch.tensor([B, B - 7, B - 15][:R])
    valid = (torch.arange(B)[None] < n_valid[:, None]).float()
    return E, Wt, M, Nn, Y, valid, n_valid, g


@pytest.mark.parametrize("act", ["quadratic", "relu"])
@pytest.mark.parametrize("loss", ["mse", "ce"])
@pytest.mark.parametrize("dropout", [False, True])
def test_hand_written_backward_matches_autograd(act, loss, dropout):
    E, Wt, M, Nn, Y, valid, n_valid, g = _random_problem()
    p = Wt.shape[-1]
    dmask = (torch.rand(*M.shape, E.shape[-1], generator=g) > 0.4).float() / 0.6 if dropout else None
    rows = valid / n_valid[:, None].float()
    gm, gn = flat_index(M, Nn, p)
    dE, dWt = fast_grads(E, Wt, gm, gn, Y, rows, act, loss, dmask)
    E2, W2 = E.clone().requires_grad_(True), Wt.clone().requires_grad_(True)
    out = batched_forward(E2, W2, M, Nn, act, dmask=dmask)
    total = (per_example_loss(out, Y, loss) * rows).sum()  # sum over runs of each run's mean loss
    gE, gW = torch.autograd.grad(total, [E2, W2])
    assert torch.allclose(dE, gE, rtol=1e-4, atol=1e-6)
    assert torch.allclose(dWt, gW, rtol=1e-4, atol=1e-6)
    if loss == "mse":  # per_example_loss agrees with nn.MSELoss on one-hot targets
        ref = torch.nn.functional.mse_loss(out[0].detach(), torch.nn.functional.one_hot(Y[0], p).float())
        assert torch.allclose(per_example_loss(out.detach(), Y, "mse")[0].mean(), ref, rtol=1e-5)


@pytest.mark.parametrize("act", ["quadratic", "relu"])
def test_one_run_alone_gets_its_batched_gradients_bit_for_bit(act):
    """A run alone takes the mm kernels (forgetlab.grok.kernel._grad_readout); in a batch, bmm: the same sums."""
    E, Wt, M, Nn, Y, valid, n_valid, _g = _random_problem(p=31, N=96, B=200)
    rows = valid / n_valid[:, None].float()
    gm, gn = flat_index(M, Nn, 31)
    dE, dWt = fast_grads(E, Wt, gm, gn, Y, rows, act, "mse")
    for r in range(3):
        n = int(n_valid[r])
        gm1, gn1 = flat_index(M[r:r + 1, :n], Nn[r:r + 1, :n], 31)
        dE1, dWt1 = fast_grads(E[r:r + 1], Wt[r:r + 1], gm1, gn1, Y[r:r + 1, :n], rows[r:r + 1, :n], act, "mse")
        if r == 0:  # no padding: the batch sums exactly the same rows
            assert torch.equal(dWt1[0], dWt[0]) and torch.equal(dE1[0], dE[0])
        assert torch.allclose(dWt1[0], dWt[r], rtol=1e-5, atol=1e-7) and torch.allclose(dE1[0], dE[r], atol=1e-7)
    dE2, dWt2 = fast_grads(E[:1], Wt[:1], *flat_index(M[:1], Nn[:1], 31), Y[:1], rows[:1], act, "mse",
                           groups=[(0, 1, int(n_valid[0]))])
    assert torch.equal(dWt2, dWt[:1]) and torch.equal(dE2, dE[:1])
    n = int(n_valid[1])  # run 1 alone but padded to the batch's B rows (zero weight on the padding)
    gm1, gn1 = flat_index(M[1:2, :n], Nn[1:2, :n], 31)
    alone = fast_grads(E[1:2], Wt[1:2], gm1, gn1, Y[1:2, :n], rows[1:2, :n], act, "mse")
    padded = fast_grads(E[1:2], Wt[1:2], *flat_index(M[1:2], Nn[1:2], 31), Y[1:2], rows[1:2], act, "mse",
                        groups=[(0, 1, n)], bags=row_bags(*flat_index(M[1:2], Nn[1:2], 31), 2 * 31,
                                                          valid[1].bool()))
    assert torch.equal(padded[1], alone[1]) and torch.equal(padded[0], alone[0])


@pytest.mark.parametrize("flat", [True, False])
@pytest.mark.parametrize("lrs,wds", [([0.01, 0.003], [5.0, 0.0]), ([0.01, 0.01], [15.0, 15.0])])
def test_stacked_adamw_matches_torch(flat, lrs, wds):
    g = torch.Generator().manual_seed(0)
    P = torch.randn(2, 6, 5, generator=g)
    ref = [torch.nn.Parameter(P[r].clone()) for r in range(2)]
    Q = torch.randn(2, 3, generator=g)
    refq = [torch.nn.Parameter(Q[r].clone()) for r in range(2)]
    opts = [torch.optim.AdamW([ref[r], refq[r]], lr=lrs[r], betas=(0.9, 0.98), eps=1e-8, weight_decay=wds[r],
                              foreach=False) for r in range(2)]
    ours = StackedAdamW([P, Q], torch.tensor(lrs), torch.tensor(wds), flat=flat)
    P, Q = ours.params
    for _ in range(20):
        G, H = torch.randn(2, 6, 5, generator=g), torch.randn(2, 3, generator=g)
        for r in range(2):
            ref[r].grad, refq[r].grad = G[r].clone(), H[r].clone()
            opts[r].step()
        ours.step([G, H])
    for r in range(2):
        assert torch.allclose(P[r], ref[r].data, rtol=1e-5, atol=1e-7)
        assert torch.allclose(Q[r], refq[r].data, rtol=1e-5, atol=1e-7)


def test_train_matches_torch_autograd_reference():
    """Our full-batch trainer equals a plain nn.Module + torch AdamW + MSELoss loop (the official recipe)."""
    from forgetlab.grok.data import make_dataset
    from forgetlab.grok.models import MLP

    c = TrainConfig(p=13, width=32, steps=30, wd=1.0, xi=0.3, log_every=100)
    ours = train(c)
    ds = make_dataset(13, "add", c.alpha, c.xi)
    model = MLP(13, 32, generator=torch.Generator().manual_seed(c.seed))
    opt = torch.optim.AdamW(model.parameters(), lr=c.lr, betas=(0.9, 0.98), eps=1e-8, weight_decay=c.wd)
    m, n, y = ds.m[: ds.n_train], ds.n[: ds.n_train], ds.y[: ds.n_train]
    for _ in range(c.steps):
        loss = torch.nn.functional.mse_loss(model(m, n), torch.nn.functional.one_hot(y, 13).float())
        opt.zero_grad()
        loss.backward()
        opt.step()
    for k in ("U", "V", "W"):
        ref = getattr(model, k).data
        assert torch.allclose(ours.state[k], ref, rtol=1e-4, atol=1e-5 * float(ref.abs().max()))


def _mixed_configs(**common):
    base = dict(p=17, width=32, steps=60, log_every=20) | common
    return [TrainConfig(**base, alpha=0.5, xi=0.3, wd=0.0, lr=0.01, seed=1),
            TrainConfig(**base, alpha=0.7, xi=0.1, wd=5.0, lr=0.005, seed=2, dropout=0.3),
            TrainConfig(**base, alpha=0.4, xi=0.0, wd=1.0, lr=0.02, seed=3, split_seed=7, label_seed=2)]


@pytest.mark.parametrize("common", [dict(), dict(batch_size=16), dict(batchnorm=True, batch_size=16),
                                    dict(batchnorm=True), dict(loss="ce", act="relu")])
def test_batched_equals_solo(common):
    cfgs = _mixed_configs(**common)
    batched = train_many(cfgs)
    for c, rb in zip(cfgs, batched, strict=True):
        rs = train(c)
        for k, v in rs.state.items():
            scale = float(v.abs().max()) + 1e-12
            assert float((rb.state[k] - v).abs().max()) <= 1e-5 * scale, (c, k)
        for key in ("train_acc", "test_acc", "corrupted_acc", "clean_acc", "inversion_acc"):
            assert rb.summary[key] == rs.summary[key]
        assert len(rb.history) == len(rs.history) == 4  # steps 0, 20, 40, 60


def test_summary_keys_history_and_ipr():
    from forgetlab.grok.config import SUMMARY_KEYS

    r = train(TrainConfig(p=13, width=16, steps=5, log_every=2))
    assert tuple(r.summary) == SUMMARY_KEYS
    assert [h["step"] for h in r.history] == [0, 2, 4, 5]
    assert r.ipr_init.shape == (16,) and r.state["W"].shape == (13, 16)
    assert r.summary["n_corrupted"] == int(0.35 * int(0.5 * 169))


def test_full_inversion_at_small_p():
    r = train(TrainConfig(p=31, width=128, alpha=0.8, xi=0.2, wd=8.0, steps=800, log_every=1000))
    s = r.summary
    assert s["test_acc"] >= 0.9 and s["phase"] == "Full Inversion", s
    assert s["inversion_acc"] > 0.9  # the corrupted examples get their true labels back


def test_forgetting_with_large_weight_decay():
    r = train(TrainConfig(p=13, width=32, wd=20.0, steps=700, log_every=1000))
    assert r.summary["weight_norm"] < 1e-2 and r.summary["phase"] == "Forgetting"


def test_transformer_trains():
    r = train(TrainConfig(model="transformer", p=13, alpha=0.8, xi=0.0, steps=60, lr=0.003, log_every=30))
    assert r.summary["train_acc"] > r.history[0]["train_acc"] and r.summary["train_acc"] > 0.5


def test_batch_key_and_mismatch():
    a, b = TrainConfig(p=13, width=16), TrainConfig(p=13, width=16, wd=5, alpha=0.3, seed=4, dropout=0.2)
    assert batch_key(a) == batch_key(b)
    with pytest.raises(BadInput):
        train_many([a, TrainConfig(p=13, width=32)])
    assert estimate_batch_bytes([a, b]) > estimate_batch_bytes([a]) > 0


@pytest.mark.parametrize("kw,field", [
    (dict(p=21, op="div"), "p"), (dict(alpha=1.0), "alpha"), (dict(xi=1.2), "xi"), (dict(width=0), "width"),
    (dict(steps=0), "steps"), (dict(op="pow"), "op"), (dict(act="tanh"), "act"), (dict(model="rnn"), "model"),
    (dict(loss="l1"), "loss"), (dict(batch_size=-1), "batch_size"), (dict(batch_size=10**6), "batch_size"),
    (dict(batchnorm=True, batch_size=1), "batch_size"), (dict(batchnorm=True, p=5, alpha=0.05), "alpha"),
    (dict(dropout=1.0), "dropout"), (dict(wd=-1.0), "wd"), (dict(lr=0.0), "lr"),
    (dict(model="transformer", batchnorm=True), "batchnorm"), (dict(depth=1), "depth"), (dict(depth=9), "depth"),
    (dict(model="transformer", depth=3), "depth"), (dict(layernorm=True), "layernorm"),
    (dict(batchnorm=True, batchnorm_placement="mid"), "batchnorm_placement"),
    (dict(batchnorm_placement="pre"), "batchnorm_placement"), (dict(init_scale=0.0), "init_scale"),
    (dict(init_scale=-1.0), "init_scale"), (dict(init_scale=float("nan")), "init_scale"),
    (dict(init_scale=10.5), "init_scale"), (dict(init_scale=float("inf")), "init_scale"),
    (dict(seed=-1), "seed"), (dict(split_seed=2**63), "split_seed"), (dict(label_seed=1.5), "label_seed"),
    (dict(model="transformer", width=16), "width"),  # it was recorded and had no effect
])
def test_bad_config(kw, field):
    with pytest.raises(BadInput) as e:
        TrainConfig(**kw).validate()
    assert e.value.field == field


@pytest.mark.parametrize("placement", ["post", "pre"])
def test_batched_batchnorm_matches_nn_batchnorm1d(placement):
    """Training-mode forward, gradients and running statistics equal MLP(batchnorm=True) (nn.BatchNorm1d),
    with BatchNorm after and before the activation."""
    from forgetlab.grok.models import MLP

    p, N, B = 13, 24, 32
    g = torch.Generator().manual_seed(0)
    model = MLP(p, N, batchnorm=True, generator=g, batchnorm_placement=placement).train()
    with torch.no_grad():
        model.bn.weight.uniform_(0.5, 1.5, generator=g)
        model.bn.bias.uniform_(-0.2, 0.2, generator=g)
    M, Nn = torch.randint(0, p, (1, B), generator=g), torch.randint(0, p, (1, B), generator=g)
    E = torch.cat([model.U.detach().T, model.V.detach().T])[None].clone().requires_grad_(True)
    Wt = model.W.detach().T[None].clone().requires_grad_(True)
    bn = {"weight": model.bn.weight.detach()[None].clone().requires_grad_(True),
          "bias": model.bn.bias.detach()[None].clone().requires_grad_(True),
          "running_mean": torch.zeros(1, N), "running_var": torch.ones(1, N)}
    ours = batched_forward(E, Wt, M, Nn, "quadratic", bn=bn, train=True, bn_placement=placement)
    ref = model(M[0], Nn[0])
    assert torch.allclose(ours[0], ref, rtol=1e-4, atol=1e-5)
    w = torch.randn(B, p, generator=g)
    (ours[0] * w).sum().backward()
    (ref * w).sum().backward()
    assert torch.allclose(Wt.grad[0].T, model.W.grad, rtol=1e-4, atol=1e-5)
    assert torch.allclose(E.grad[0, :p].T, model.U.grad, rtol=1e-4, atol=1e-5)
    assert torch.allclose(bn["weight"].grad[0], model.bn.weight.grad, rtol=1e-4, atol=1e-5)
    assert torch.allclose(bn["running_mean"][0], model.bn.running_mean, rtol=1e-4, atol=1e-6)
    assert torch.allclose(bn["running_var"][0], model.bn.running_var, rtol=1e-4, atol=1e-6)


def test_batchnorm_groups_normalize_each_run_over_its_valid_rows_only():
    """Runs in groups with different valid rows: each run's output, gradients and running statistics equal
    nn.BatchNorm1d on its valid rows alone; padded rows come out 0 and take no gradient."""
    from forgetlab.grok.kernel import _batchnorm

    R, B, N, short = 3, 20, 6, 13
    g = torch.Generator().manual_seed(3)
    h = torch.randn(R, B, N, generator=g, dtype=torch.float64).requires_grad_(True)
    bn = {"weight": torch.rand(R, N, generator=g, dtype=torch.float64).add(0.5).requires_grad_(True),
          "bias": torch.randn(R, N, generator=g, dtype=torch.float64).requires_grad_(True),
          "running_mean": torch.zeros(R, N, dtype=torch.float64), "running_var": torch.ones(R, N, dtype=torch.float64)}
    out = _batchnorm(h, bn, [(0, 2, B), (2, 3, short)], True)
    w = torch.randn(R, B, N, generator=g, dtype=torch.float64)
    (out * w).sum().backward()
    assert torch.equal(out[2, short:], torch.zeros(B - short, N, dtype=torch.float64))
    assert torch.equal(h.grad[2, short:], torch.zeros(B - short, N, dtype=torch.float64))
    for r, n in ((0, B), (1, B), (2, short)):
        ref = torch.nn.BatchNorm1d(N, dtype=torch.float64).train()
        with torch.no_grad():
            ref.weight.copy_(bn["weight"][r])
            ref.bias.copy_(bn["bias"][r])
        x = h.detach()[r, :n].clone().requires_grad_(True)
        y = ref(x)
        (y * w[r, :n]).sum().backward()
        assert torch.allclose(out[r, :n], y, atol=1e-12)
        assert torch.allclose(h.grad[r, :n], x.grad, atol=1e-12)
        assert torch.allclose(bn["weight"].grad[r], ref.weight.grad, atol=1e-12)
        assert torch.allclose(bn["bias"].grad[r], ref.bias.grad, atol=1e-12)
        assert torch.allclose(bn["running_mean"][r], ref.running_mean, atol=1e-12)
        assert torch.allclose(bn["running_var"][r], ref.running_var, atol=1e-12)


def _accuracy(net, x, y):
    """Fraction of rows of one-hot inputs x whose argmax output is y (no gradients)."""
    with torch.no_grad():
        return (net(x).argmax(-1) == y).double().mean().item()


def _deep_reference(p, N, seed, batchnorm, placement="post"):
    """The 3-layer ReLU MLP written with nn modules on one-hot inputs (a BatchNorm per hidden layer after or
    before its ReLU); returns the net, its linear layers and its BatchNorm layers."""
    from forgetlab.grok.models import init_deep_weights

    U, V, (H,), W = init_deep_weights(p, N, 3, torch.Generator().manual_seed(seed))
    lin = [torch.nn.Linear(2 * p, N, bias=False), torch.nn.Linear(N, N, bias=False), torch.nn.Linear(N, p, bias=False)]
    for layer, w in zip(lin, (torch.cat([U, V], 1), H, W), strict=True):
        layer.weight.data.copy_(w)
    bns = [torch.nn.BatchNorm1d(N) for _ in range(2)] if batchnorm else []
    mods = []
    for i in range(2):
        hidden = [torch.nn.ReLU(), *bns[i:i + 1]]
        mods += [lin[i], *(hidden[::-1] if placement == "pre" else hidden)]
    return torch.nn.Sequential(*mods, lin[2]), lin, bns


@pytest.mark.parametrize("batchnorm,placement", [(False, "post"), (True, "post"), (True, "pre")])
def test_deep_mlp_training_equals_torch_reference(batchnorm, placement):
    from forgetlab.grok.data import make_dataset

    p, N = 11, 24
    c = TrainConfig(p=p, width=N, depth=3, act="relu", alpha=0.6, xi=0.2, lr=3e-3, wd=1.0, batchnorm=batchnorm,
                    batchnorm_placement=placement, batch_size=16 if batchnorm else 0, steps=6, log_every=3, seed=2)
    ours = train(c)
    net, lin, bns = _deep_reference(p, N, 2, batchnorm, placement)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, betas=(0.9, 0.98), eps=1e-8, weight_decay=1.0,
                            foreach=False)
    ds = make_dataset(p, "add", 0.6, 0.2)
    x, y = ds.one_hot_inputs()[:ds.n_train], ds.y[:ds.n_train]
    gen = torch.Generator().manual_seed(2)
    from forgetlab.grok.models import init_deep_weights

    init_deep_weights(p, N, 3, gen)  # the run's generator continues with the minibatch order
    per_epoch = ds.n_train // 16
    for step in range(6):
        if batchnorm and step % per_epoch == 0:  # a fresh permutation each epoch, remainder dropped
            perm = torch.randperm(ds.n_train, generator=gen)
        idx = perm[step % per_epoch * 16:(step % per_epoch + 1) * 16] if batchnorm else slice(None)
        loss = torch.nn.functional.mse_loss(net(x[idx]), torch.nn.functional.one_hot(y[idx], p).float())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.allclose(ours.state["U"], lin[0].weight.data[:, :p], rtol=1e-4, atol=1e-5)
    assert torch.allclose(ours.state["H1"], lin[1].weight.data, rtol=1e-4, atol=1e-5)
    assert torch.allclose(ours.state["W"], lin[2].weight.data, rtol=1e-4, atol=1e-5)
    if batchnorm:
        assert torch.allclose(ours.state["bn2_weight"], bns[1].weight.data, rtol=1e-4, atol=1e-5)
        assert torch.allclose(ours.state["bn1_running_var"], bns[0].running_var, rtol=1e-4, atol=1e-5)
    assert ours.summary["train_acc"] == pytest.approx(_accuracy(net.eval(), x, y), abs=1e-9)
    assert ours.ipr_final.shape == (2 * N,)


def test_deep_mlp_run_in_a_batch_equals_the_run_alone_with_dropout():
    base = dict(p=11, width=16, depth=3, act="relu", steps=10, log_every=5, lr=3e-3)
    configs = [TrainConfig(**base, seed=1, dropout=0.3, alpha=0.5), TrainConfig(**base, seed=2, alpha=0.8, wd=2.0)]
    for c, rb in zip(configs, train_many(configs), strict=True):
        alone = train(c)
        for k, v in alone.state.items():
            assert torch.allclose(rb.state[k], v, rtol=1e-5, atol=1e-6), (c.seed, k)


def test_a_run_in_a_batch_equals_the_run_alone_bit_for_bit():
    """Runs sharing lr and wd update in per-run tensors (StackedAdamW), so the fused AdamW rounds each element
    alike alone and in a batch; with N * p not a multiple of the vector width, a flat buffer did not."""
    cfgs = [TrainConfig(p=13, width=50, steps=30, alpha=0.5, xi=0.2, wd=5.0, seed=s, log_every=30) for s in (0, 1, 2)]
    for c, rb in zip(cfgs, train_many(cfgs, keep_history=False), strict=True):
        rs = train(c, keep_history=False)
        assert all(torch.equal(rs.state[k], rb.state[k]) for k in rs.state), c.seed
        assert rs.summary["train_acc"] == rb.summary["train_acc"]


@pytest.mark.parametrize("extra", [dict(), dict(depth=3, act="relu"),
                                   dict(model="transformer", layernorm=True, width=500)])
def test_init_scale_multiplies_every_initial_matrix_and_keeps_norm_layers(extra):
    """Runs of one batch with init_scale 1 and 0.5 start from the same draws, the second at half of every
    matrix and embedding; LayerNorm gains and biases stay 1 and 0; each run trains as it would alone."""
    from forgetlab.grok.train import _initial_weights
    from forgetlab.grok.train_transformer import _init_model

    base = dict(p=7, steps=3, log_every=1, lr=1e-2, alpha=0.6, **({"width": 8} | extra))
    cfgs = [TrainConfig(**base, seed=2), TrainConfig(**base, seed=2, init_scale=0.5)]
    gens = [torch.Generator().manual_seed(2) for _ in cfgs]
    if extra.get("model") == "transformer":
        params = _init_model(cfgs).params
        for k, v in params.items():
            assert torch.equal(v[1], v[0] if k.startswith("ln") else v[0] * 0.5), k
        assert {k for k in params if k.startswith("ln")}
    else:
        for t in _initial_weights(cfgs, gens):
            assert torch.equal(t[1], t[0] * 0.5)
    batched = train_many(cfgs)
    for c, rb in zip(cfgs, batched, strict=True):
        alone = train(c)
        assert all(torch.allclose(rb.state[k], alone.state[k], rtol=1e-5, atol=1e-6) for k in alone.state)
    norms = [r.history[0]["weight_norm"] for r in batched]
    if extra.get("model") != "transformer":
        assert norms[1] == pytest.approx(norms[0] * 0.5, rel=1e-6)


def test_runs_with_batchnorm_at_different_places_never_share_a_batch():
    post, pre = TrainConfig(p=7, width=4, batchnorm=True), TrainConfig(p=7, width=4, batchnorm=True,
                                                                       batchnorm_placement="pre")
    assert batch_key(post) != batch_key(pre)
    with pytest.raises(BadInput) as e:
        train_many([post, pre])
    assert "batchnorm_placement" in str(e.value)


def test_batchnorm_placement_changes_the_function_and_a_misspelled_one_is_refused():
    from forgetlab.grok.models import MLP

    p, N, B = 7, 12, 20
    g = torch.Generator().manual_seed(5)
    E, Wt = torch.randn(1, 2 * p, N, generator=g), torch.randn(1, N, p, generator=g)
    M, Nn = torch.randint(0, p, (1, B), generator=g), torch.randint(0, p, (1, B), generator=g)
    def bn():
        return {"weight": torch.ones(1, N), "bias": torch.zeros(1, N), "running_mean": torch.zeros(1, N),
                "running_var": torch.ones(1, N)}

    outs = {where: batched_forward(E, Wt, M, Nn, "relu", bn=bn(), train=True, bn_placement=where)
            for where in ("post", "pre")}
    assert not torch.allclose(outs["post"], outs["pre"])
    with pytest.raises(BadInput):
        batched_forward(E, Wt, M, Nn, "relu", bn=bn(), bn_placement="Pre")
    with pytest.raises(BadInput):
        MLP(p, N, batchnorm_placement="pre")  # no BatchNorm to place


@pytest.mark.parametrize("extra", [dict(), dict(depth=3, act="relu", batchnorm=True),
                                   dict(model="transformer", width=500)])
def test_a_diverging_run_is_labelled_and_leaves_its_batch_mates_alone(extra):
    """lr 1e30 makes the loss NaN by the first logged step: that run is Diverged (not Confusion) from step 5,
    and the finite run beside it in the batch ends exactly as it does alone."""
    base = dict(p=11, alpha=0.6, xi=0.2, steps=10, log_every=5, **({"width": 16} | extra))
    ok, bad = TrainConfig(**base, lr=3e-3), TrainConfig(**base, lr=1e30)
    r_ok, r_bad = train_many([ok, bad])
    assert r_bad.summary["phase"] == "Diverged" and r_bad.summary["diverged_step"] == 5
    assert r_ok.summary["phase"] != "Diverged" and "diverged_step" not in r_ok.summary
    alone = train(ok)
    for k, v in alone.state.items():
        assert torch.allclose(r_ok.state[k], v, rtol=1e-5, atol=1e-6), k

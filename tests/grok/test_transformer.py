"""The authors' Transformer: initial weights, the forward pass against an independent full-sequence version,
dropout placement, parameter groups, and the batched training loop against torch's AdamW on the reference."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from forgetlab.errors import BadInput
from forgetlab.grok.config import TrainConfig
from forgetlab.grok.data import make_dataset
from forgetlab.grok.models import Transformer
from forgetlab.grok.train import train, train_many
from forgetlab.grok.transformer import (
    N_EMBD,
    N_HEAD,
    NO_DECAY,
    init_transformer_weights,
    stack_runs,
    transformer_forward,
)


class _OfficialInit(nn.Module):
    """The official modules' construction order and ``_init_weights`` (nn.Embedding N(0, 1), nn.Linear
    kaiming_normal fan_in 'linear'), built under the global seed as their code is."""

    def __init__(self, p: int, d: int = N_EMBD) -> None:
        super().__init__()
        self.wte, self.wpe = nn.Embedding(p, d), nn.Embedding(2, d)
        self.qkv, self.o = nn.Linear(d, 3 * d, bias=False), nn.Linear(d, d, bias=False)
        self.fc, self.proj = nn.Linear(d, 4 * d, bias=False), nn.Linear(4 * d, d, bias=False)
        self.head = nn.Linear(d, p, bias=False)
        for m in (self.wte, self.wpe, self.qkv, self.o, self.fc, self.proj, self.head):
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="linear")
            else:
                nn.init.normal_(m.weight, 0.0, 1.0)


def test_initial_weights_equal_the_official_stream():
    torch.manual_seed(7)
    ref = _OfficialInit(19)
    ours = init_transformer_weights(19, torch.Generator().manual_seed(7))
    for name in ("wte", "wpe", "qkv", "o", "fc", "proj", "head"):
        assert torch.equal(ours[name], getattr(ref, name).weight.data), name
    assert abs(float(ours["fc"].std()) - 1 / math.sqrt(N_EMBD)) < 0.01


def _textbook(w: dict, m: torch.Tensor, n: torch.Tensor, layernorm: bool) -> torch.Tensor:
    """An independent reading of the official forward: full sequence, q k^T / d_head, softmax, residuals,
    ReLU MLP, optional LayerNorms, logits / d at the last position."""
    def ln(x, name):
        return F.layer_norm(x, (N_EMBD,), w[f"{name}_weight"], w[f"{name}_bias"]) if layernorm else x

    x = w["wte"][torch.stack([m, n], 1)] + w["wpe"]
    d = x.shape[-1]
    dh = d // N_HEAD
    q, k, v = (ln(x, "ln1") @ w["qkv"].T).split(d, -1)
    heads = [torch.softmax(q[..., i * dh:(i + 1) * dh] @ k[..., i * dh:(i + 1) * dh].transpose(1, 2) / dh, -1)
             @ v[..., i * dh:(i + 1) * dh] for i in range(N_HEAD)]
    x = x + torch.cat(heads, -1) @ w["o"].T
    x = x + torch.relu(ln(x, "ln2") @ w["fc"].T) @ w["proj"].T
    return ln(x, "lnf")[:, -1] @ w["head"].T / d


@pytest.mark.parametrize("layernorm", [False, True])
def test_batched_last_position_forward_equals_full_sequence(layernorm):
    ds = make_dataset(17, "add", 0.5, 0.0)
    models = [Transformer(17, layernorm=layernorm, generator=torch.Generator().manual_seed(s)) for s in (1, 2)]
    if layernorm:  # non-trivial LayerNorm parameters
        for mdl in models:
            for k, v in mdl.weights.items():
                if k in NO_DECAY:
                    v.data.add_(0.3 * torch.randn(v.shape))
    params = stack_runs([{k: v.detach() for k, v in mdl.weights.items()} for mdl in models])
    M, Nn = torch.stack([ds.m, ds.m.flip(0)]), torch.stack([ds.n, ds.n.flip(0)])
    out = transformer_forward(params, M, Nn, "relu")
    for r, mdl in enumerate(models):
        w = {k: v.detach() for k, v in mdl.weights.items()}
        ref = _textbook(w, M[r], Nn[r], layernorm)
        assert torch.allclose(out[r], ref, rtol=1e-4, atol=1e-6)
        assert torch.allclose(mdl.eval()(M[r], Nn[r]), ref, rtol=1e-4, atol=1e-6)


def test_dropout_sites_drop_what_the_official_code_drops():
    """Zeroing a site's mask removes exactly that part: the attention weights or the attention branch remove
    the attention output; the MLP mask removes the MLP branch; the embedding mask removes the input."""
    mdl = Transformer(11, generator=torch.Generator().manual_seed(3))
    w = {k: v.detach().clone() for k, v in mdl.weights.items()}
    params = stack_runs([w])
    M, Nn = torch.arange(11)[None], torch.arange(11).flip(0)[None]
    ones = {"emb": torch.ones(1, 11, 2, N_EMBD), "attn": torch.ones(1, 11, N_HEAD, 2),
            "resid": torch.ones(1, 11, N_EMBD), "mlp": torch.ones(1, 11, N_EMBD)}
    base = transformer_forward(params, M, Nn, "relu", ones)
    assert torch.allclose(base, transformer_forward(params, M, Nn, "relu"))

    def without(site):
        return transformer_forward(params, M, Nn, "relu", {**ones, site: torch.zeros_like(ones[site])})

    no_attn = stack_runs([{**w, "o": torch.zeros_like(w["o"])}])
    no_mlp = stack_runs([{**w, "proj": torch.zeros_like(w["proj"])}])
    assert torch.allclose(without("attn"), transformer_forward(no_attn, M, Nn, "relu"), atol=1e-6)
    assert torch.allclose(without("resid"), transformer_forward(no_attn, M, Nn, "relu"), atol=1e-6)
    assert torch.allclose(without("mlp"), transformer_forward(no_mlp, M, Nn, "relu"), atol=1e-6)
    zero_in = transformer_forward(params, M, Nn, "relu", {**ones, "emb": torch.zeros_like(ones["emb"])})
    assert torch.allclose(zero_in, zero_in[:, :1].expand_as(zero_in))  # no input: one output for all pairs


def _train_reference(ref: Transformer, groups: list[dict], lr: float, steps: int) -> None:
    """Train the reference module ``ref``, whose parameters ``groups`` hold, with torch.optim.AdamW (the
    authors' betas and eps; a group's own lr wins over ``lr``), full batch, MSE, on the p = 11, alpha 0.6,
    xi 0.2 data of the tests' configs."""
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-8, foreach=False)
    ds = make_dataset(11, "add", 0.6, 0.2)
    m, n, y = ds.m[:ds.n_train], ds.n[:ds.n_train], ds.y[:ds.n_train]
    for _ in range(steps):
        loss = F.mse_loss(ref(m, n), F.one_hot(y, 11).float())
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_training_equals_torch_adamw_on_the_reference_with_layer_norm_undecayed():
    """Our batched loop (StackedAdamW, LayerNorm undecayed) against the reference module trained by
    torch.optim.AdamW with the authors' parameter groups, full batch, MSE."""
    c = TrainConfig(model="transformer", act="relu", p=11, alpha=0.6, xi=0.2, lr=3e-3, wd=2.0, layernorm=True,
                    steps=8, log_every=4, seed=5)
    ours = train(c)
    ref = Transformer(11, layernorm=True, generator=torch.Generator().manual_seed(5))
    groups = [{"params": [v for k, v in ref.weights.items() if k not in NO_DECAY], "weight_decay": 2.0},
              {"params": [v for k, v in ref.weights.items() if k in NO_DECAY], "weight_decay": 0.0}]
    _train_reference(ref, groups, lr=3e-3, steps=8)
    for k, v in ref.weights.items():
        assert torch.allclose(ours.state[k], v.detach(), rtol=1e-4, atol=1e-5), k
    assert not torch.allclose(ours.state["ln1_weight"], torch.ones(N_EMBD))


def test_mup_groups_equal_the_authors_rescale_optim():
    """``param_groups="mup"`` against torch.optim.AdamW with the groups of the authors' ``config_optimizers``
    (rescale_optim, s = 1), written out from their code: to_qkv and o at lr * g_scale = lr/d, c_fc at
    lr * wide_factor**-0.5 / d, c_proj at lr / (wide_factor * d), lm_head at lr, all decayed; embeddings and
    LayerNorm at lr, undecayed. The standard groups give other weights (the test can tell them apart)."""
    c = TrainConfig(model="transformer", act="relu", p=11, alpha=0.6, xi=0.2, lr=3e-3, wd=4.0, layernorm=True,
                    steps=6, log_every=3, seed=5, param_groups="mup")
    ours = train(c)
    ref = Transformer(11, layernorm=True, generator=torch.Generator().manual_seed(5))
    w, d = ref.weights, N_EMBD
    lrs = {"qkv": 3e-3 / d, "o": 3e-3 / d, "fc": 3e-3 * 4 ** -0.5 / d, "proj": 3e-3 / (4 * d), "head": 3e-3}
    groups = [{"params": [w[k]], "lr": lr, "weight_decay": 4.0} for k, lr in lrs.items()]
    groups.append({"params": [v for k, v in w.items() if k not in lrs], "lr": 3e-3, "weight_decay": 0.0})
    _train_reference(ref, groups, lr=3e-3, steps=6)
    for k, v in w.items():
        assert torch.allclose(ours.state[k], v.detach(), rtol=1e-4, atol=1e-5), k
    standard = train(TrainConfig(**{**c.__dict__, "param_groups": "standard"}))
    assert not torch.allclose(standard.state["qkv"], ours.state["qkv"], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(standard.state["wte"], ours.state["wte"], rtol=1e-4, atol=1e-5)


def test_mup_groups_are_refused_for_the_mlp():
    with pytest.raises(BadInput, match="param_groups"):
        TrainConfig(param_groups="mup").validate()


def test_a_transformer_run_in_a_batch_equals_the_run_alone():
    base = dict(model="transformer", act="relu", p=11, alpha=0.7, xi=0.3, lr=2e-3, steps=12, log_every=6)
    configs = [TrainConfig(**base, seed=1, dropout=0.2, batch_size=16), TrainConfig(**base, seed=2, wd=3.0,
                                                                                    batch_size=16)]
    batched = train_many(configs)
    for c, rb in zip(configs, batched, strict=True):
        alone = train(c)
        for k, v in alone.state.items():
            assert torch.allclose(rb.state[k], v, rtol=1e-5, atol=1e-6), (c.seed, k)
        assert rb.summary["train_acc"] == alone.summary["train_acc"]
    assert batched[0].ipr_final.shape == (N_EMBD,) and "weight_norm_init" in batched[0].summary

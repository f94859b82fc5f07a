"""Opt-in bf16 matmuls (``TrainConfig.matmul_precision``): what the mode computes, where it is refused, and
that fp32 stays the exact, unchanged default."""

import pytest
import torch
import torch.nn.functional as F
from cli_runner import run_cli

import forgetlab.grok.precision as prec
from forgetlab.errors import BadInput
from forgetlab.grok.config import TrainConfig, batch_key
from forgetlab.grok.sweep.spec import config_dict, run_id
from forgetlab.grok.train import train


def _bf(x):
    return x.to(torch.bfloat16)


def test_products_take_bf16_operands_and_return_fp32():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 5, 7, generator=g), torch.randn(3, 7, 4, generator=g)
    w, bias = torch.randn(4, 7, generator=g), torch.randn(4, generator=g)
    with prec.Bf16Matmuls():
        mm, bmm, at = a[0] @ b[0], torch.bmm(a, b), torch.matmul(a, b)
        lin = F.linear(a, w, bias)
        out = torch.empty(3, 5, 4)
        torch.bmm(a, b, out=out)
        acc = torch.full((3, 5, 4), 7.0)
        same = acc.baddbmm_(a, b, beta=0.0, alpha=2.0)
        acc2 = torch.full((5, 4), 7.0)
        same2 = acc2.addmm_(a[0], b[0], beta=0.0, alpha=2.0)  # the solo kernel's in-place product
        dbl = a.double()[0] @ b.double()[0]  # not fp32: untouched
    assert all(t.dtype == torch.float32 for t in (mm, bmm, at, lin, out, acc, acc2)) and same2 is acc2
    assert torch.equal(acc2, torch.addmm(_bf(acc2), _bf(a[0]), _bf(b[0]), beta=0.0, alpha=2.0).float())
    assert torch.equal(mm, (_bf(a[0]) @ _bf(b[0])).float()) and torch.equal(bmm, torch.bmm(_bf(a), _bf(b)).float())
    assert torch.equal(at, bmm) and torch.equal(out, bmm) and same is acc
    assert torch.equal(acc, torch.baddbmm(_bf(acc), _bf(a), _bf(b), beta=0.0, alpha=2.0).float())
    assert torch.equal(lin, F.linear(_bf(a), _bf(w), _bf(bias)).float())
    assert dbl.dtype == torch.float64 and torch.equal(dbl, a.double()[0] @ b.double()[0])
    exact = torch.bmm(a, b)  # outside the mode: fp32 again
    assert not torch.equal(exact, bmm) and torch.allclose(exact, bmm, rtol=0.05, atol=0.05)


def test_einsum_add_forms_keywords_and_methods_are_products_too():
    g = torch.Generator().manual_seed(1)
    a, b, c = torch.randn(3, 5, 7, generator=g), torch.randn(3, 7, 4, generator=g), torch.randn(3, 5, 4, generator=g)
    with prec.Bf16Matmuls():
        att = torch.einsum("rbe,rce->rbc", a, a)  # the Transformer's attention products
        add3 = torch.baddbmm(c, a, b, beta=0.5)  # an fp32 input of its own
        add2 = torch.addmm(c[0], a[0], b[0])
        kw = torch.bmm(a, mat2=b)
        meth = a[0].mm(b[0])
        acc = torch.full((3, 5, 4), float("nan"))
        acc.baddbmm_(a, b, beta=0.0)  # beta=0: the old (even NaN) values are not read
    assert torch.equal(att, torch.einsum("rbe,rce->rbc", _bf(a), _bf(a)).float())
    assert torch.equal(add3, torch.baddbmm(_bf(c), _bf(a), _bf(b), beta=0.5).float())
    assert torch.equal(add2, torch.addmm(_bf(c[0]), _bf(a[0]), _bf(b[0])).float())
    assert torch.equal(kw, torch.bmm(_bf(a), _bf(b)).float()) and torch.equal(meth, kw[0])
    assert torch.equal(acc, kw)
    assert not torch.equal(att, torch.einsum("rbe,rce->rbc", a, a))  # the attention products did change


def test_fp32_default_keeps_run_ids_and_bf16_is_its_own_run():
    c = TrainConfig(p=13, width=16, steps=5)
    assert "matmul_precision" not in config_dict(c)  # runs stored before the field keep their ids
    b = TrainConfig(p=13, width=16, steps=5, matmul_precision="bf16")
    assert config_dict(b)["matmul_precision"] == "bf16" and run_id(b) != run_id(c)
    assert batch_key(b) != batch_key(c)  # never trained in one batch
    with pytest.raises(BadInput, match="matmul_precision"):
        TrainConfig(matmul_precision="fp16").validate()


def test_bf16_refused_without_native_units(monkeypatch):
    monkeypatch.setattr(prec, "bf16_is_fast", lambda device="cpu": False)
    prec.check_matmul_precision("fp32")
    with pytest.raises(BadInput, match=r"matmul_precision.*AVX-512 BF16"):
        prec.check_matmul_precision("bf16")
    with pytest.raises(BadInput, match="matmul_precision"):
        train(TrainConfig(p=13, width=16, steps=5, matmul_precision="bf16"))


def test_cli_refuses_bf16_in_one_line_and_writes_nothing(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(prec, "bf16_is_fast", lambda device="cpu": False)
    for cmd in (["grok", "train", "--p", "13", "--steps", "5", "--out", str(tmp_path / "t")],
                ["grok", "reproduce", "--cases", "A1", "--p", "13", "--out", str(tmp_path / "r")]):
        code, _, err = run_cli([*cmd, "--matmul-precision", "bf16", "--quiet"], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "matmul_precision" in err, err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("kw", [dict(), dict(depth=3, act="relu", batchnorm=True, batch_size=32),
                                dict(model="transformer", act="relu", lr=1e-3, dropout=0.1, width=500)])
def test_bf16_training_changes_the_numbers_but_not_the_outcome(monkeypatch, kw):
    monkeypatch.setattr(prec, "bf16_is_fast", lambda device="cpu": True)  # emulated here if need be: tiny runs
    base = dict(p=13, steps=40, log_every=10, wd=1.0, **({"width": 32} | kw))
    exact = train(TrainConfig(**base))
    again = train(TrainConfig(**base))
    bf16 = train(TrainConfig(**base, matmul_precision="bf16"))
    assert exact.summary["weight_norm"] == again.summary["weight_norm"]  # fp32 path untouched and deterministic
    assert bf16.summary["weight_norm"] != exact.summary["weight_norm"]  # the products really ran in bf16
    assert bf16.summary["weight_norm"] == pytest.approx(exact.summary["weight_norm"], rel=0.02)
    assert abs(bf16.summary["train_acc"] - exact.summary["train_acc"]) <= 0.1


def test_a_bf16_sweep_is_refused_before_its_folder_where_the_cpu_has_no_bf16_units(tmp_path, monkeypatch):
    from forgetlab.grok.sweep.run import run_sweep
    from forgetlab.grok.sweep.spec import load_spec

    monkeypatch.setattr(prec, "bf16_is_fast", lambda device="cpu": False)
    spec_file = tmp_path / "s.toml"
    spec_file.write_text('[sweep]\nname = "b"\n[fixed]\np = 7\nwidth = 4\nsteps = 2\nmatmul_precision = "bf16"\n'
                         '[grid]\nalpha = [0.4, 0.8]\n')
    with pytest.raises(BadInput, match="matmul_precision"):
        run_sweep(load_spec(spec_file, config_cls=TrainConfig), tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()

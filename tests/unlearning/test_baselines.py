"""GA, GD, NPO and RMU: registry, the NPO and RMU losses by hand, and that each one raises forget NLL."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from forgetlab.errors import BadInput
from forgetlab.unlearning.baselines import METHODS, NPO, RMU, UnlearnConfig, get_method, mean_nll
from forgetlab.unlearning.lm import LMConfig, build_model, collate, encode_pair, prompt_of


@pytest.fixture(scope="module")
def trained(micro):
    from forgetlab.unlearning.lm import load_lm

    model, tok = load_lm(micro["path"])
    return micro["world"], tok, model.state_dict()


def _batch(tok, items):
    return collate([encode_pair(tok, prompt_of(i["question"]), i["answer"]) for i in items], tok.pad_token_id)


def _fresh(tok, state):
    m = build_model(LMConfig(hidden=32, layers=1, heads=2, intermediate=64, vocab_size=512), tok)
    m.load_state_dict(state)
    return m.eval()


def test_registry_and_bad_names():
    assert set(METHODS) == {"ga", "gd", "npo", "rmu"}
    with pytest.raises(BadInput, match="ga, gd, npo, rmu"):
        get_method("simnpo")
    with pytest.raises(BadInput):
        NPO(UnlearnConfig(lr=0))


def test_npo_loss_at_reference_is_2_over_beta_log2(trained):
    w, tok, state = trained
    m = _fresh(tok, state)
    f, r = _batch(tok, w.forget("forget10")[:8]), _batch(tok, w.items(w.retain_authors())[:8])
    npo = NPO(UnlearnConfig(beta=0.1))
    with torch.no_grad():
        got = npo.loss(m, f, r, ref_model=m)
        expect = 2 / 0.1 * math.log(2) + mean_nll(m, r)
    assert float(got) == pytest.approx(float(expect), rel=1e-5)


@pytest.mark.parametrize("name", ["ga", "gd", "npo", "rmu"])
def test_unlearning_raises_forget_nll(trained, name):
    w, tok, state = trained
    m = _fresh(tok, state)
    forget, retain = w.forget("forget10"), w.items(w.retain_authors())
    fb = _batch(tok, forget)
    with torch.no_grad():
        before = float(mean_nll(m, fb))
    # RMU moves activations, not the loss directly: a larger step and control vector on this 1-layer micro model
    cfg = UnlearnConfig(epochs=3, lr=5e-3, steering_coeff=8.0) if name == "rmu" else UnlearnConfig(epochs=2, lr=2e-3)
    rec = get_method(name)(cfg).unlearn(m, tok, forget, retain)
    with torch.no_grad():
        after = float(mean_nll(m, fb))
    assert after > before + 0.1
    assert rec["method"] == name and rec["processes"] == 1 and rec["steps"] >= 2


def test_gd_needs_retain(trained):
    w, tok, state = trained
    with pytest.raises(BadInput, match="retain"):
        get_method("gd")().unlearn(_fresh(tok, state), tok, w.forget("forget10"), [])


def test_rmu_loss_by_hand_and_it_steers_forget_activations(trained):
    """At the reference point the retain term is 0 and the forget term is the masked MSE to ``c u`` (|u| = 1,
    u >= 0); unlearning moves the forget answers' activations towards ``c u``."""
    w, tok, state = trained
    m = _fresh(tok, state)
    forget, retain = w.forget("forget10"), w.items(w.retain_authors())
    f, r = _batch(tok, forget[:8]), _batch(tok, retain[:8])
    rmu = RMU(UnlearnConfig(steering_coeff=2.0))
    with torch.no_grad():
        got = float(rmu.loss(m, f, r, ref_model=m))
        h = rmu._activations(m, f)
        cu = rmu.control(h.shape[-1], h.device)
        mask = f["labels"] != -100
        by_hand = torch.stack([((h[i][mask[i]] - cu[0]) ** 2).mean() for i in range(h.shape[0])]).mean()
    assert float(cu.norm()) == pytest.approx(2.0) and bool((cu >= 0).all())
    assert got == pytest.approx(float(by_hand), rel=1e-5)
    fb = _batch(tok, forget)
    with torch.no_grad():
        before = float(rmu._masked_mse(rmu._activations(m, fb), cu, fb["labels"]))
    RMU(UnlearnConfig(epochs=2, lr=2e-3)).unlearn(m, tok, forget, retain)
    with torch.no_grad():
        after = float(rmu._masked_mse(rmu._activations(m, fb), cu, fb["labels"]))
    assert after < before


def test_the_state_after_an_epoch_is_the_shorter_run_s_end(trained):
    """One 3-epoch run scores the 2-epoch point of a tuning grid: ``on_epoch`` sees exactly the weights a
    2-epoch run ends with (GD: the cycling retain batches included)."""
    world, tok, state = trained
    forget, retain = world.forget("forget10")[:12], world.items(world.retain_authors()[:2])
    seen: dict[int, dict] = {}
    long_run = _fresh(tok, state)
    METHODS.get("gd")(UnlearnConfig(lr=1e-3, epochs=3, batch_size=4)).unlearn(
        long_run, tok, forget, retain, on_epoch=lambda e, m: seen.update({e: copy.deepcopy(m.state_dict())}))
    short_run = _fresh(tok, state)
    METHODS.get("gd")(UnlearnConfig(lr=1e-3, epochs=2, batch_size=4)).unlearn(short_run, tok, forget, retain)
    assert sorted(seen) == [1, 2, 3]
    for k, v in short_run.state_dict().items():
        assert torch.equal(v, seen[2][k]), k
    assert any(not torch.equal(v, seen[3][k]) for k, v in short_run.state_dict().items())

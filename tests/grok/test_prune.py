import torch

from forgetlab.grok.data import make_dataset
from forgetlab.grok.fourier import analytic_solution
from forgetlab.grok.prune import evaluate_states, prune_curves, prune_neurons


def test_prune_removes_exactly_the_chosen_neurons():
    g = torch.Generator().manual_seed(0)
    state = {"U": torch.randn(8, 5, generator=g), "V": torch.randn(8, 5, generator=g),
             "W": torch.randn(5, 8, generator=g)}
    out = prune_neurons(state, torch.tensor([1, 6]))
    for k in range(8):
        zeroed = k in (1, 6)
        assert bool((out["U"][k] == 0).all()) == zeroed and bool((out["V"][k] == 0).all()) == zeroed
        assert bool((out["W"][:, k] == 0).all()) == zeroed
        if not zeroed:
            assert torch.equal(out["U"][k], state["U"][k]) and torch.equal(out["W"][:, k], state["W"][:, k])
    assert not bool((state["U"][1] == 0).all())  # the input is not modified


def test_prune_curves_on_a_mixed_network():
    """Half analytic (periodic, IPR ~1) and half random neurons: low-IPR-first pruning keeps accuracy,
    high-IPR-first destroys it, and the curve starts at the unpruned accuracy."""
    p, N = 23, 128
    U, V, W = analytic_solution(p, N, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    state = {"U": torch.cat([U, 0.02 * torch.randn(N, p, generator=g)]),
             "V": torch.cat([V, 0.02 * torch.randn(N, p, generator=g)]),
             "W": torch.cat([W, 0.02 * torch.randn(p, N, generator=g)], dim=1)}
    ds = make_dataset(p, "add", 0.5, 0.0)
    curves = prune_curves(state, ds, fractions=(0.0, 0.5, 0.75))
    assert set(curves) == {"low", "high", "random"}
    full = evaluate_states([state], ds)[0]["test_acc"]
    assert curves["low"][0]["test_acc"] == full
    assert curves["low"][1]["test_acc"] == 1.0  # the 128 random neurons are gone, the solution remains
    assert curves["high"][1]["test_acc"] < 0.3
    assert set(curves["low"][0]) == {"fraction", "train_acc", "test_acc", "corrupted_acc", "clean_acc"}
    # the random control removes periodic neurons in proportion: it lies between the two orders, strictly
    # below low-IPR-first once most neurons are gone, and it is reproducible from its seed
    deep = prune_curves(state, ds, fractions=(0.75, 0.9), seed=3)
    for i in range(2):
        assert deep["high"][i]["test_acc"] < deep["random"][i]["test_acc"] < deep["low"][i]["test_acc"]
    assert prune_curves(state, ds, fractions=(0.75, 0.9), seed=3)["random"] == deep["random"]

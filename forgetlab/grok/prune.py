"""Pruning by IPR order (paper Sec. 4): zero whole hidden neurons, no retraining, and watch accuracies.

Neuron k is removed by zeroing row k of U and V and column k of W. Orders: lowest IPR first (removes the
memorizing, non-periodic neurons), highest IPR first (removes the periodic, generalizing ones) and a random
order, the control the paper lacks. All pruned networks of one curve are evaluated as one batch.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ForgetlabError
from .data import Dataset, stack_datasets
from .fourier import neuron_ipr
from .kernel import batched_forward
from .metrics import run_metrics

ORDERS = ("low", "high", "random")
DEFAULT_FRACTIONS = tuple(round(0.05 * i, 2) for i in range(21))


def prune_neurons(state: dict[str, torch.Tensor], neurons: torch.Tensor) -> dict[str, torch.Tensor]:
    """A copy of ``state`` with the given hidden neurons (indices ``[k]``) zeroed in U, V and W."""
    out = {k: v.clone() for k, v in state.items()}
    out["U"][neurons] = 0.0
    out["V"][neurons] = 0.0
    out["W"][:, neurons] = 0.0
    return out


def check_state(state: dict[str, torch.Tensor], where: str = "model") -> tuple[int, int]:
    """Return (p, N) of an MLP state dict, or raise :class:`ForgetlabError` naming what is wrong."""
    for k in ("U", "V", "W"):
        if k not in state:
            raise ForgetlabError(f"{where}: missing tensor {k!r} (not an MLP checkpoint)")
    N, p = state["U"].shape if state["U"].dim() == 2 else (None, None)
    if N is None or state["V"].shape != (N, p) or state["W"].shape != (p, N):
        raise ForgetlabError(f"{where}: inconsistent shapes U{tuple(state['U'].shape)} "
                             f"V{tuple(state['V'].shape)} W{tuple(state['W'].shape)}")
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise ForgetlabError(f"{where}: tensors {', '.join(bad)} hold NaN or infinite values (a diverged run: "
                             "its IPR order means nothing)")
    return p, N


def evaluate_states(states: list[dict[str, torch.Tensor]], ds: Dataset, act: str = "quadratic",
                    loss: str = "mse", bn_placement: str = "post") -> list[dict[str, Any]]:
    """Accuracies of several MLP states (same shape) on one dataset, evaluated as one batch (BatchNorm, when
    the states have it, at ``bn_placement``: the run's ``batchnorm_placement``)."""
    p = ds.p
    E = torch.stack([torch.cat([s["U"].T, s["V"].T]) for s in states])
    Wt = torch.stack([s["W"].T for s in states])
    bn = None
    if "bn_weight" in states[0]:
        bn = {k: torch.stack([s[f"bn_{k}"] for s in states])
              for k in ("weight", "bias", "running_mean", "running_var")}
    b = stack_datasets([ds] * len(states))
    if E.shape[1] != 2 * p:
        raise ForgetlabError(f"states of p={E.shape[1] // 2} do not fit a dataset of p={p}")
    with torch.no_grad():
        out = batched_forward(E, Wt, b.M, b.Nn, act, bn=bn, train=False, bn_placement=bn_placement)
    return run_metrics(out, b, loss)


def prune_curves(state: dict[str, torch.Tensor], ds: Dataset, *, act: str = "quadratic",
                 fractions: tuple[float, ...] = DEFAULT_FRACTIONS, seed: int = 0, bn_placement: str = "post"
                 ) -> dict[str, list[dict[str, float | None]]]:
    """Accuracy curves ``{"low"|"high"|"random": [{"fraction", "train_acc", "test_acc", "corrupted_acc",
    "clean_acc"}, ...]}``; the first ``round(fraction * N)`` neurons of each order are removed."""
    _, N = check_state(state)
    iprs = neuron_ipr(state["U"], state["V"], state["W"])
    orders = {"low": torch.argsort(iprs, stable=True), "high": torch.argsort(-iprs, stable=True),
              "random": torch.randperm(N, generator=torch.Generator().manual_seed(seed))}
    curves = {}
    for name, order in orders.items():
        states = [prune_neurons(state, order[: round(f * N)]) for f in fractions]
        mets = evaluate_states(states, ds, act, bn_placement=bn_placement)
        curves[name] = [{"fraction": f, **{k: m[k] for k in ("train_acc", "test_acc", "corrupted_acc",
                                                               "clean_acc")}}
                        for f, m in zip(fractions, mets, strict=True)]
    return curves

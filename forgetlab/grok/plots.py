"""Figures of runs: accuracy curves, IPR histograms and mean IPR over training, pruning curves, |gamma_k| against
IPR_k with and without BatchNorm (PNG, written atomically)."""

from __future__ import annotations

import io
import os
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from ..runs import atomic_write_bytes

CURVES = (("train_acc", "train (corrupted labels)"), ("corrupted_acc", "corrupted subset"),
          ("clean_acc", "clean subset"), ("test_acc", "test"), ("inversion_acc", "inversion (true labels)"))


def _save(fig, path: str | os.PathLike) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def plot_accuracy(history: list[dict[str, Any]], path: str | os.PathLike, title: str = "") -> None:
    """Accuracy (percent) against step for the five curves of a run's history."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    steps = [h["step"] for h in history]
    for key, label in CURVES:
        vals = [None if h.get(key) is None else 100 * h[key] for h in history]
        if any(v is not None for v in vals):
            ax.plot(steps, [float("nan") if v is None else v for v in vals], label=label)
    _finish_accuracy_axes(fig, ax, "step", title, path)


def _finish_accuracy_axes(fig, ax, xlabel: str, title: str, path: str | os.PathLike) -> None:
    """Labels, 0-100% range, legend and grid of an accuracy plot; then save it atomically."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)


def plot_ipr(ipr_init: torch.Tensor, ipr_final: torch.Tensor, path: str | os.PathLike, title: str = "") -> None:
    """Histogram of per-neuron IPR at initialization and at the end."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    bins = torch.linspace(0, 1, 41).tolist()
    ax.hist(ipr_init.numpy(), bins=bins, alpha=0.6, label="init")
    ax.hist(ipr_final.numpy(), bins=bins, alpha=0.6, label="end")
    ax.set_xlabel("neuron IPR")
    ax.set_ylabel("number of neurons")
    ax.set_title(title)
    ax.legend()
    _save(fig, path)


def plot_prune(curves: dict[str, list[dict[str, Any]]], path: str | os.PathLike, title: str = "") -> None:
    """Test and corrupted-subset accuracy against the fraction of neurons pruned, per order."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    colors = {"low": "tab:blue", "high": "tab:red", "random": "tab:gray"}
    for name, pts in curves.items():
        f = [100 * x["fraction"] for x in pts]
        ax.plot(f, [100 * x["test_acc"] for x in pts], color=colors.get(name), label=f"{name}-IPR first: test"
                if name != "random" else "random order: test")
        corr = [x["corrupted_acc"] for x in pts]
        if all(c is not None for c in corr):
            ax.plot(f, [100 * c for c in corr], color=colors.get(name), linestyle="--",
                    label=f"{name}: corrupted subset")
    _finish_accuracy_axes(fig, ax, "neurons pruned (%)", title, path)


def plot_ipr_over_training(histories: dict[str, list[dict[str, Any]]], path: str | os.PathLike,
                           title: str = "mean IPR over training") -> None:
    """The network's mean IPR against step (paper Fig. 2), one line per named run history."""
    fig, ax = plt.subplots(figsize=(6.8, 4.2))
    for name, history in histories.items():
        pts = [(h["step"], h["mean_ipr"]) for h in history if h.get("mean_ipr") is not None]
        if pts:
            ax.plot([s for s, _ in pts], [v for _, v in pts], label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("mean IPR")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    _save(fig, path)


def _pearson(x: torch.Tensor, y: torch.Tensor) -> float:
    return float(torch.corrcoef(torch.stack([x.double(), y.double()]))[0, 1])


def plot_gamma_ipr(with_bn: Any, without_bn: Any, path: str | os.PathLike) -> None:
    """Side by side, per hidden neuron k against its IPR_k (paper Fig. 5): |gamma_k| of the BatchNorm run and,
    for the same setting without BatchNorm, the norm of the neuron's output weights ``||W[:, k]||``.

    ``with_bn`` and ``without_bn`` are :class:`~forgetlab.grok.result.TrainResult` s of 2-layer MLPs.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    ipr_bn, gamma = with_bn.ipr_final, with_bn.state["bn_weight"].abs()
    ipr_plain, w_norm = without_bn.ipr_final, without_bn.state["W"].norm(dim=0)
    for ax, x, y, label, name in ((axes[0], ipr_bn, gamma, r"$|\gamma_k|$", "with BatchNorm"),
                                  (axes[1], ipr_plain, w_norm, r"$\|W_{:,k}\|$", "without BatchNorm")):
        ax.scatter(x.numpy(), y.numpy(), s=6, alpha=0.6)
        ax.set_xlabel(r"neuron IPR$_k$")
        ax.set_ylabel(label)
        ax.set_xlim(0, 1)
        ax.set_title(f"{name}: corr = {_pearson(x, y):.2f}", fontsize=10)
        ax.grid(alpha=0.3)
    _save(fig, path)

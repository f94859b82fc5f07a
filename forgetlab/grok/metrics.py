"""Accuracies and losses of a batch of runs from their logits on every pair (train, test, corrupted, clean).

``inversion_acc`` is the accuracy on the corrupted training pairs measured against their *true* labels: it
rises when a network un-memorizes the corrupted labels and predicts the rule instead.
"""

from __future__ import annotations

from typing import Any

import torch

from .data import RunsData
from .kernel import per_example_loss


def run_metrics(out: torch.Tensor, b: RunsData, loss: str) -> list[dict[str, Any]]:
    """Accuracies and losses per run from logits on all pairs ``out [R, P, p]``."""
    R, P, _ = out.shape
    pred = out.argmax(-1)
    pos = torch.arange(P)[None]
    train = pos < b.n_train[:, None]
    corr = pos < b.n_corr[:, None]
    clean = train & ~corr
    test = ~train
    ok = pred == b.Y
    ok_true = pred == b.Ytrue
    ex_loss = per_example_loss(out, b.Y, loss)
    spread = (out.amax((1, 2)) - out.amin((1, 2)))

    def frac(mask: torch.Tensor, hits: torch.Tensor) -> list[float | None]:
        cnt = mask.sum(1)
        val = (hits & mask).sum(1).double() / cnt.clamp_min(1)
        return [float(v) if int(c) else None for v, c in zip(val, cnt, strict=True)]

    def mean(mask: torch.Tensor) -> list[float]:
        return ((ex_loss * mask).sum(1) / mask.sum(1).clamp_min(1)).tolist()

    cols = {"train_acc": frac(train, ok), "test_acc": frac(test, ok), "corrupted_acc": frac(corr, ok),
            "clean_acc": frac(clean, ok), "inversion_acc": frac(corr, ok_true),
            "train_loss": mean(train), "test_loss": mean(test), "output_spread": spread.tolist()}
    return [{k: v[r] for k, v in cols.items()} for r in range(R)]


def add_ipr_and_norm(mets: list[dict[str, Any]], iprs: torch.Tensor, weights: list[torch.Tensor]) -> None:
    """Add ``mean_ipr`` (mean over the rows of ``iprs [R, n]``) and ``weight_norm`` (the L2 norm of all of a
    run's ``weights``, each ``[R, ...]``, in float64) to each run's metrics."""
    norms = torch.sqrt(sum(w.double().square().flatten(1).sum(1) for w in weights))
    for r, mt in enumerate(mets):
        mt["mean_ipr"] = float(iprs[r].mean())
        mt["weight_norm"] = float(norms[r])

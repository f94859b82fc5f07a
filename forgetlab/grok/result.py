"""What a finished run returns (:class:`TrainResult`) and how its summary and phase are computed from its final
metrics: shared by the MLP and Transformer training loops."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from .config import SUMMARY_KEYS, TrainConfig
from .data import Dataset
from .phases import classify_phase, is_collapsed

#: A run diverged when one of these final metrics is NaN or infinite.
DIVERGENCE_KEYS = ("train_loss", "test_loss", "weight_norm")


@dataclass
class TrainResult:
    """Outcome of one run: summary (the ``summary.json`` keys), history (one dict per logged step), state
    (tensors for ``model.safetensors``: U ``[N, p]``, V ``[N, p]``, W ``[p, N]``, BN tensors if any; the
    Transformer's named matrices) and the per-neuron IPR at init and at the end. ``summary["seconds"]`` is the
    wall time of the batch's training loop divided by the number of runs in the batch; ``extra`` holds final
    losses, ``collapsed``, ``n_train`` and, from :func:`~forgetlab.grok.train.train_many`, when training began
    (``started``) and the machine then (``machine``), which the run's config.json records."""

    config: TrainConfig
    summary: dict[str, Any]
    history: list[dict[str, Any]]
    state: dict[str, torch.Tensor]
    ipr_init: torch.Tensor
    ipr_final: torch.Tensor
    extra: dict[str, Any] = field(default_factory=dict)


def start_histories(mets: list[dict], keep_history: bool) -> tuple[list[list[dict]], list[float]]:
    """(per-run histories holding step 0 when ``keep_history``, per-run initial weight norms) from the runs'
    metrics before the first step: how every training loop (MLP, Transformer) starts its records."""
    histories: list[list[dict]] = [[{"step": 0, **m}] if keep_history else [] for m in mets]
    return histories, [m["weight_norm"] for m in mets]


def log_if_due(step: int, c0: TrainConfig, keep_history: bool, histories: list[list[dict]],
               callback: Callable[[int, list[dict]], None] | None,
               evaluate: Callable[[], tuple[list[dict], torch.Tensor]]) -> tuple[list[dict], torch.Tensor] | None:
    """At a logged step (every ``log_every`` when keeping history, and the last): ``evaluate()``, record each
    run's metrics, call ``callback``; return the evaluation (metrics, per-neuron IPR), else None. The logging of
    every training loop (MLP, Transformer)."""
    if not ((keep_history and step % c0.log_every == 0) or step == c0.steps):
        return None
    mets, ipr = evaluate()
    if keep_history:
        for history, m in zip(histories, mets, strict=True):
            history.append({"step": step, **m})
    if callback is not None:
        callback(step, mets)
    return mets, ipr


def is_finite_metrics(mt: dict) -> bool:
    """True when none of a logged step's :data:`DIVERGENCE_KEYS` is NaN or infinite (missing keys pass)."""
    return all(mt.get(k) is None or math.isfinite(mt[k]) for k in DIVERGENCE_KEYS)


def diverged_step(history: list[dict], final_step: int) -> int:
    """The first logged step whose metrics are not finite; ``final_step`` when the history holds none such (a
    run without kept history is only seen at its last step, so then this is an upper bound)."""
    return next((h["step"] for h in history if not is_finite_metrics(h)), final_step)


def make_result(c: TrainConfig, ds: Dataset, mt: dict, history: list, state: dict, ipr0: torch.Tensor,
                ipr1: torch.Tensor, seconds: float, weight_norm_init: float) -> TrainResult:
    """The result of one finished run from its final metrics ``mt`` and its initial weight norm. A run whose
    final metrics are not finite is labelled Diverged, and its summary says from which logged step."""
    diverged = not is_finite_metrics(mt)
    collapsed = is_collapsed(mt["weight_norm"], mt["output_spread"], weight_norm_init)
    summary = {k: mt[k] for k in SUMMARY_KEYS[:SUMMARY_KEYS.index("phase")]}
    summary.update(phase=classify_phase(mt["train_acc"], mt["test_acc"], c.xi, collapsed, diverged),
                   steps=c.steps, seconds=seconds, n_corrupted=ds.n_corrupted,
                   n_corrupted_unchanged=ds.n_corrupted_unchanged, weight_norm_init=weight_norm_init)
    if diverged:
        summary["diverged_step"] = diverged_step(history, c.steps)
    extra = {"train_loss": mt["train_loss"], "test_loss": mt["test_loss"], "collapsed": collapsed,
             "n_train": ds.n_train}
    return TrainResult(c, summary, history, state, ipr0.clone(), ipr1.clone(), extra)

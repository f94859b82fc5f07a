"""The Transformer's training loop: R runs of :mod:`forgetlab.grok.transformer` as one batched program.

The same step definition as the MLP loop (:mod:`forgetlab.grok.train`): one AdamW update per step, full batch
(runs padded to the largest training set, padded rows weighted 0) or per-run minibatches
(:class:`~forgetlab.grok.minibatch.Minibatches`); the loss of a batch is the sum of the runs' mean losses, so
runs stay independent; each run's initialization, dropout masks and minibatch order come from its own
generator. Gradients by autograd; :class:`~forgetlab.grok.kernel.StackedAdamW` with per-run learning rate and
weight decay in the authors' parameter groups (``TrainConfig.param_groups``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..progress import Bar
from .config import TrainConfig
from .data import RunsData, make_dataset, stack_datasets
from .fourier import neuron_ipr
from .kernel import StackedAdamW, per_example_loss
from .metrics import add_ipr_and_norm, run_metrics
from .minibatch import Minibatches
from .models import scale_initial_weights
from .result import TrainResult, log_if_due, make_result, start_histories
from .transformer import (
    draw_dropout_masks,
    init_transformer_weights,
    param_group_scales,
    stack_runs,
    transformer_forward,
    transformer_ipr_views,
)


@dataclass
class _Model:
    """Parameters of R runs (``[R, ...]`` views into the optimizers' flat buffers) and their optimizers."""

    params: dict[str, torch.Tensor]
    opts: list[tuple[StackedAdamW, list[str]]]  # (optimizer, the parameter names it updates)
    gens: list[torch.Generator]


def _init_model(configs: list[TrainConfig]) -> _Model:
    """Each run's initial weights from its own generator; one optimizer per (lr factor, decayed) group."""
    gens = [torch.Generator().manual_seed(c.seed) for c in configs]
    params = stack_runs([scale_initial_weights(init_transformer_weights(c.p, g, c.layernorm), c.init_scale)
                         for c, g in zip(configs, gens, strict=True)])
    lr = torch.tensor([c.lr for c in configs])
    wd = torch.tensor([c.wd for c in configs])
    groups: dict[tuple[float, bool], list[str]] = {}
    for name, scale in param_group_scales(list(params), configs[0].param_groups).items():
        groups.setdefault(scale, []).append(name)
    opts = []
    for (factor, decayed), names in groups.items():
        opt = StackedAdamW([params[k] for k in names], lr * factor, wd if decayed else torch.zeros_like(wd))
        params.update(zip(names, opt.params, strict=True))  # the parameters now live in opt's buffer
        opts.append((opt, names))
    return _Model(params, opts, gens)


def _evaluate(model: _Model, b: RunsData, c0: TrainConfig) -> tuple[list[dict[str, Any]], torch.Tensor]:
    """Metrics of every run on all pairs, with mean IPR and weight norm; the per-dimension IPR ``[R, d]``."""
    with torch.no_grad():
        out = transformer_forward(model.params, b.M, b.Nn, c0.act)
        mets = run_metrics(out, b, c0.loss)
        iprs = neuron_ipr(*transformer_ipr_views(model.params))
        add_ipr_and_norm(mets, iprs, list(model.params.values()))
    return mets, iprs


def _step(model: _Model, c0: TrainConfig, M: torch.Tensor, Nn: torch.Tensor, Y: torch.Tensor,
          rows: torch.Tensor, masks: dict[str, torch.Tensor] | None) -> None:
    """One AdamW update of every run: loss = sum over runs of the row-weighted per-example losses."""
    for t in model.params.values():
        t.requires_grad_(True)
    with torch.enable_grad():
        out = transformer_forward(model.params, M, Nn, c0.act, masks)
        loss = (per_example_loss(out, Y, c0.loss) * rows).sum()
        names = [k for _, group in model.opts for k in group]
        grads = dict(zip(names, torch.autograd.grad(loss, [model.params[k] for k in names]), strict=True))
    with torch.no_grad():
        for opt, group in model.opts:
            opt.step([grads[k] for k in group])
    for t in model.params.values():
        t.requires_grad_(False)


def train_transformer_batch(configs: list[TrainConfig], keep_history: bool, progress: bool,
                            callback: Callable | None) -> list[TrainResult]:
    """Train same-shape Transformer runs as one program; results in input order."""
    c0 = configs[0]
    R, steps, bs = len(configs), c0.steps, c0.batch_size
    b = stack_datasets([make_dataset(c.p, c.op, c.alpha, c.xi, split_seed=c.split_seed, label_seed=c.label_seed)
                        for c in configs])
    model = _init_model(configs)
    n_max = int(b.n_train.max())
    valid = (torch.arange(n_max)[None] < b.n_train[:, None]).float()
    full_rows = valid / b.n_train[:, None].float()
    batches = Minibatches(b.n_train.tolist(), bs, model.gens) if bs else None
    n_rows = b.n_train.tolist() if bs == 0 else [bs] * R
    rates = [c.dropout for c in configs]
    mets, ipr_init = _evaluate(model, b, c0)
    histories, norm_init = start_histories(mets, keep_history)
    t0 = time.perf_counter()
    with Bar(f"training {R} transformer run(s)", steps, progress) as bar:
        for step in range(1, steps + 1):
            if batches is None:
                M, Nn, Y, rows = b.M[:, :n_max], b.Nn[:, :n_max], b.Y[:, :n_max], full_rows
            else:
                idx = batches.indices(step)
                M, Nn, Y = b.M.gather(1, idx), b.Nn.gather(1, idx), b.Y.gather(1, idx)
                rows = torch.full((R, bs), 1.0 / bs)
            masks = draw_dropout_masks(R, M.shape[1], rates, model.gens, n_rows)
            _step(model, c0, M, Nn, Y, rows, masks)
            logged = log_if_due(step, c0, keep_history, histories, callback, lambda: _evaluate(model, b, c0))
            if logged is not None:
                mets, ipr_now = logged
            bar.advance()
    seconds = (time.perf_counter() - t0) / R
    return [make_result(c, b.datasets[r], mets[r], histories[r],
                        {k: v[r].detach().clone() for k, v in model.params.items()}, ipr_init[r], ipr_now[r],
                        seconds, norm_init[r]) for r, c in enumerate(configs)]

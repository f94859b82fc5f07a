"""Training: one batched tensor program for R runs of the same shape (weights ``[R, N, p]``).

Every run has its own seed (init, dropout masks, minibatch order), its own data (alpha, xi, split and label
seeds), weight decay, dropout rate, learning rate and initial scale. Runs are independent: the loss of a batch
is the sum of the runs' losses, and every random draw of run r comes from run r's own ``torch.Generator`` in a
fixed order, so a run trained inside a batch equals the same run trained alone (up to float summation order).

Two code paths compute gradients (:mod:`forgetlab.grok.kernel`): for the 2-layer MLP without BatchNorm a
hand-written forward/backward (three batched matmuls, a gather and a scatter-add); with BatchNorm or deeper MLPs
(``depth`` > 2) autograd through the same batched forward. Transformers have their own batched loop
(:mod:`forgetlab.grok.train_transformer`) with the same step definition.

What a "step" is: one AdamW update. Full batch (``batch_size=0``): a step sees the whole training set. Minibatch
(``batch_size=B``): each epoch draws a fresh permutation of the run's own training set from the run's
generator and cuts it into ``n_train // B`` batches (the remainder is dropped), exactly as the official
`phase_diagrams_bn.py`. Note the official minibatch/BN phase-diagram scripts count *normalized* steps: their
"2000 steps" at batch B are ``2000 * 256 // B`` updates, with ``lr = 0.01 * sqrt(B / 256)``; use
:func:`paper_minibatch_steps` to convert (reproduction case A8 reports both readings).
Runs with different alpha share a minibatch batch without padding (every run draws B of its own examples);
in full batch, runs are padded to the largest n_train and padded rows carry zero weight.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch

from ..errors import BadInput
from ..hardware import machine
from ..progress import Bar
from .config import BATCH_FIELDS, TrainConfig, batch_key, n_pairs
from .data import RunsData, make_dataset, stack_datasets
from .fourier import layered_neuron_ipr, neuron_ipr
from .kernel import (
    RowBags,
    StackedAdamW,
    batched_forward,
    fast_grads,
    flat_index,
    loss_grad_weights,
    loss_targets,
    row_bags,
)
from .metrics import add_ipr_and_norm, run_metrics
from .minibatch import Minibatches
from .models import init_deep_weights, init_mlp_weights, scale_initial_weights
from .precision import check_matmul_precision, matmul_precision
from .result import TrainResult, log_if_due, make_result, start_histories
from .train_transformer import train_transformer_batch

# The trainer contract of sweeps (forgetlab.grok.sweep.spec.load_trainer): this module provides these four, and
# run_work, which a sweep's batch-size probe uses where a trainer has it.
__all__ = ["TrainConfig", "TrainResult", "batch_key", "estimate_batch_bytes", "run_work", "train", "train_many"]


def run_work(config: TrainConfig) -> int:
    """Examples one training step of this run computes (its batch size, or its training set): what a probe of
    batch sizes divides its time by, so that runs of different alpha compare (:mod:`.sweep.batching`)."""
    return config.batch_size or config.n_train()


def estimate_batch_bytes(configs: list[TrainConfig]) -> int:
    """Upper estimate of the peak memory (bytes) of ``train_many(configs)`` for one batch of same-shape runs.

    Counts the float32 tensors alive at once, per run: for the MLP about eight ``[n, N]`` activations and
    gradients per hidden layer (n = the largest n_train, or the batch size), the ``[P, N]`` and ``[P, p]``
    evaluation tensors, and parameters with AdamW moments and gradients; for the Transformer about 54 ``[n, d]``
    activations and gradients saved by autograd, 16 ``[P, d]`` evaluation tensors and its parameters.
    """
    if not configs:
        return 0
    c0 = configs[0]
    P = n_pairs(c0.p, c0.op)
    n = c0.batch_size or max(c.n_train() for c in configs)
    N, p = c0.width, c0.p
    if c0.model == "transformer":
        from .transformer import N_EMBD as d

        per_run = 4 * (54 * n * d + 6 * n * p + 16 * P * d + 3 * P * p + 4 * (12 * d * d + 2 * p * d + 6 * d))
        return len(configs) * per_run + (1 << 20)
    factor = 2 if c0.batchnorm or c0.depth > 2 else 1
    layers = c0.depth - 1
    per_run = 4 * (layers * factor * 8 * n * N + 3 * n * p + layers * 2 * P * N + 3 * P * p
                   + 4 * (3 * p * N + (c0.depth - 2) * N * N) + 4 * layers * N)
    return len(configs) * per_run + (1 << 20)


def _train_mlp_batch(configs: list[TrainConfig], keep_history: bool, progress: bool,
                     callback: Callable | None) -> list[TrainResult]:
    """Train same-shape MLP runs as one program; runs are sorted by n_train internally (equal-n runs form
    contiguous groups, see :func:`~forgetlab.grok.kernel.fast_grads`), results come back in input order."""
    sizes = [c.n_train() for c in configs]
    order = sorted(range(len(configs)), key=lambda r: sizes[r])
    inner_cb = None
    if callback is not None:
        def inner_cb(step: int, mets: list[dict]) -> None:
            callback(step, _unsort(mets, order))
    results = _train_mlp_sorted([configs[r] for r in order], keep_history, progress, inner_cb)
    return _unsort(results, order)


def _unsort(items: list, order: list[int]) -> list:
    """Put ``items`` (in sorted order) back where ``order`` took them from."""
    out: list = [None] * len(items)
    for i, r in enumerate(order):
        out[r] = items[i]
    return out


@dataclass
class _Runs:
    """The trainable state of R same-shape MLP runs: weights as views into the optimizer's flat buffer."""

    E: torch.Tensor  # [R, 2p, N]
    Wt: torch.Tensor  # [R, N, p]
    H: list[torch.Tensor]  # hidden maps of a deeper MLP, each [R, N, N] (input-major: h @ H)
    bn: list[dict[str, torch.Tensor]] | None  # one per hidden layer, each tensor [R, N]
    opt: StackedAdamW
    gflat: torch.Tensor  # flat gradient buffer
    gviews: list[torch.Tensor]  # views of gflat shaped like the parameters
    gens: list[torch.Generator]  # one per run: init, dropout masks, minibatch order

    @property
    def params(self) -> list[torch.Tensor]:
        return self.opt.params


def _initial_weights(configs: list[TrainConfig], gens: list[torch.Generator]) -> list[torch.Tensor]:
    """E ``[R, 2p, N]``, Wt ``[R, N, p]`` and the hidden maps ``[R, N, N]``, each run from its own generator and
    times its ``init_scale``."""
    c0 = configs[0]
    p, Nw = c0.p, c0.width
    per_run = []
    for c, g in zip(configs, gens, strict=True):
        if c0.depth == 2:
            U, V, W = init_mlp_weights(p, Nw, g)
            hidden: list[torch.Tensor] = []
        else:
            U, V, hidden, W = init_deep_weights(p, Nw, c0.depth, g)
        w = {"E": torch.cat([U.T, V.T]), "Wt": W.T, **{f"H{i}": h.T for i, h in enumerate(hidden, start=1)}}
        per_run.append(list(scale_initial_weights(w, c.init_scale).values()))
    return [torch.stack(ts).contiguous() for ts in zip(*per_run, strict=True)]


def _init_runs(configs: list[TrainConfig]) -> _Runs:
    """Initial weights from each run's own generator (the official random stream) and the stacked AdamW."""
    c0 = configs[0]
    R, Nw, n_hidden = len(configs), c0.width, c0.depth - 1
    gens = [torch.Generator().manual_seed(c.seed) for c in configs]
    params = _initial_weights(configs, gens)
    n_mats = len(params)
    bn = None
    if c0.batchnorm:
        bn = [{"weight": torch.ones(R, Nw), "bias": torch.zeros(R, Nw), "running_mean": torch.zeros(R, Nw),
               "running_var": torch.ones(R, Nw)} for _ in range(n_hidden)]
        params += [t for layer in bn for t in (layer["weight"], layer["bias"])]
    opt = StackedAdamW(params, torch.tensor([c.lr for c in configs]), torch.tensor([c.wd for c in configs]))
    views = opt.params  # the parameters now live in the optimizer's flat buffer
    if bn is not None:
        for i, layer in enumerate(bn):
            layer["weight"], layer["bias"] = views[n_mats + 2 * i], views[n_mats + 2 * i + 1]
    gflat, gviews = opt.new_flat_grad()
    return _Runs(views[0], views[1], list(views[2:n_mats]), bn, opt, gflat, gviews, gens)


@dataclass
class _FullBatch:
    """Full-batch inputs: the first n_max pairs of each run, rows past n_train_r weighted 0."""

    M: torch.Tensor  # [R, n_max]
    Nn: torch.Tensor
    Y: torch.Tensor
    rows: torch.Tensor  # [R, n_max] loss weight 1/n_r on valid rows
    gm: torch.Tensor  # [R * n_max] flat gather indices
    gn: torch.Tensor
    target: torch.Tensor  # [R, n_max, p] constant part of the output gradient
    groups: list[tuple[int, int, int]]  # (r0, r1, n): runs r0..r1-1 have n valid rows
    bags: RowBags  # valid rows grouped by the row of E their gradient flows to (computed once)


def _full_batch(b: RunsData, p: int, loss: str) -> _FullBatch:
    n_max = int(b.n_train.max())
    M, Nn, Y = b.M[:, :n_max], b.Nn[:, :n_max], b.Y[:, :n_max]
    valid = (torch.arange(n_max)[None] < b.n_train[:, None]).float()
    rows = valid / b.n_train[:, None].float()
    gm, gn = flat_index(M, Nn, p)
    ns = b.n_train.tolist()
    groups = [(r0, r0 + ns.count(n), n) for r0, n in enumerate(ns) if r0 == 0 or ns[r0 - 1] != n]
    bags = row_bags(gm, gn, M.shape[0] * 2 * p, valid.reshape(-1) > 0)
    return _FullBatch(M, Nn, Y, rows, gm, gn, loss_targets(Y, rows, p, loss), groups, bags)


def _draw_dropout(bufs: list[torch.Tensor], q: list[float], n_rows: list[int],
                  gens: list[torch.Generator]) -> None:
    """Fill each ``[R, B, N]`` buffer (one per hidden layer) with scaled dropout masks, each run's rows from its
    own generator (layer by layer)."""
    for buf in bufs:
        for r, rate in enumerate(q):
            if rate > 0:
                buf[r, :n_rows[r]].bernoulli_(1 - rate, generator=gens[r]).mul_(1.0 / (1 - rate))


def _evaluate(runs: _Runs, b: RunsData, c0: TrainConfig) -> tuple[list[dict[str, Any]], torch.Tensor]:
    """Metrics of every run on all pairs, with mean IPR and weight norm; and the per-neuron IPR ``[R, N]``
    (``[R, 2N]`` for a deeper MLP: first-layer neurons, then last-layer neurons)."""
    with torch.no_grad():
        out = batched_forward(runs.E, runs.Wt, b.M, b.Nn, c0.act, bn=runs.bn, train=False, hidden=runs.H,
                              bn_placement=c0.batchnorm_placement)
        mets = run_metrics(out, b, c0.loss)
        iprs = layered_neuron_ipr(*_uvw(runs.E, runs.Wt)) if runs.H else neuron_ipr(*_uvw(runs.E, runs.Wt))
        add_ipr_and_norm(mets, iprs, [runs.E, runs.Wt, *runs.H])
    return mets, iprs


def _step_grads(runs: _Runs, c0: TrainConfig, M: torch.Tensor, Nn: torch.Tensor, Y: torch.Tensor,
                rows: torch.Tensor, dmask: list[torch.Tensor] | None, fb: _FullBatch | None) -> list[torch.Tensor]:
    """Gradients of one step: the fused kernel for the 2-layer MLP without BatchNorm, autograd otherwise."""
    if runs.bn is None and not runs.H:
        gm, gn = (fb.gm, fb.gn) if fb is not None else flat_index(M, Nn, c0.p)
        fast_grads(runs.E, runs.Wt, gm, gn, Y, rows, c0.act, c0.loss, dmask[0] if dmask else None,
                   fb.groups if fb is not None else None, fb.target if fb is not None else None,
                   out=(runs.gviews[0], runs.gviews[1]), bags=fb.bags if fb is not None else None)
        return [runs.gflat]
    for t in runs.params:
        t.requires_grad_(True)
    with torch.enable_grad():
        out = batched_forward(runs.E, runs.Wt, M, Nn, c0.act, dmask=dmask, bn=runs.bn,
                              groups=fb.groups if fb is not None else None, train=True, hidden=runs.H,
                              bn_placement=c0.batchnorm_placement)
        g = loss_grad_weights(out.detach(), Y, rows, c0.loss)
        grads = list(torch.autograd.grad(out, runs.params, g))
    for t in runs.params:
        t.requires_grad_(False)
    return grads


def _train_mlp_sorted(configs: list[TrainConfig], keep_history: bool, progress: bool,
                      callback: Callable | None) -> list[TrainResult]:
    """The training loop of R same-shape MLP runs sorted by n_train (see module docstring)."""
    c0 = configs[0]
    R, p, steps, bs = len(configs), c0.p, c0.steps, c0.batch_size
    b = stack_datasets([make_dataset(c.p, c.op, c.alpha, c.xi, split_seed=c.split_seed,
                                     label_seed=c.label_seed) for c in configs])
    runs = _init_runs(configs)
    fb = _full_batch(b, p, c0.loss) if bs == 0 else None
    batches = Minibatches(b.n_train.tolist(), bs, runs.gens) if bs else None
    q = [c.dropout for c in configs]
    n_rows = [int(n) if bs == 0 else bs for n in b.n_train]
    B = int(b.n_train.max()) if bs == 0 else bs
    dmask = [torch.ones(R, B, c0.width) for _ in range(c0.depth - 1)] if any(q) else None

    mets, ipr_init = _evaluate(runs, b, c0)
    histories, norm_init = start_histories(mets, keep_history)
    t0 = time.perf_counter()
    with Bar(f"training {R} run(s)", steps, progress) as bar:
        for step in range(1, steps + 1):
            if fb is not None:
                M, Nn, Y, rows = fb.M, fb.Nn, fb.Y, fb.rows
            else:
                idx = batches.indices(step)
                M, Nn, Y = b.M.gather(1, idx), b.Nn.gather(1, idx), b.Y.gather(1, idx)
                rows = torch.full((R, bs), 1.0 / bs)
            if dmask is not None:
                _draw_dropout(dmask, q, n_rows, runs.gens)
            grads = _step_grads(runs, c0, M, Nn, Y, rows, dmask, fb)
            with torch.no_grad():
                runs.opt.step(grads)
            logged = log_if_due(step, c0, keep_history, histories, callback,
                                lambda: _evaluate(runs, b, c0))
            if logged is not None:
                mets, ipr_now = logged
            bar.advance()
    seconds = (time.perf_counter() - t0) / R
    return [make_result(c, b.datasets[r], mets[r], histories[r], _state_of(runs, r), ipr_init[r], ipr_now[r],
                        seconds, norm_init[r]) for r, c in enumerate(configs)]


def _state_of(runs: _Runs, r: int) -> dict[str, torch.Tensor]:
    """Run ``r``'s tensors in the paper's layout: U ``[N, p]``, V ``[N, p]``, W ``[p, N]``, hidden maps
    ``H1, H2, ...`` ``[N, N]`` (``[out, in]``), BN tensors (``bn_*``; ``bn1_*, bn2_*, ...`` when deeper)."""
    U, V, W = _uvw(runs.E, runs.Wt)
    state = {"U": U[r].contiguous().clone(), "V": V[r].contiguous().clone(), "W": W[r].contiguous().clone()}
    for i, H in enumerate(runs.H, start=1):
        state[f"H{i}"] = H[r].T.contiguous().clone()
    if runs.bn is not None:
        for i, layer in enumerate(runs.bn, start=1):
            prefix = "bn" if len(runs.bn) == 1 else f"bn{i}"
            state.update({f"{prefix}_{k}": v[r].clone() for k, v in layer.items()})
    return state


def _uvw(E: torch.Tensor, Wt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Paper-layout views: U, V ``[R, N, p]`` and W ``[R, p, N]``."""
    p = Wt.shape[-1]
    return E[:, :p].transpose(1, 2), E[:, p:].transpose(1, 2), Wt.transpose(1, 2)


def train_many(configs: list[TrainConfig], *, keep_history: bool = True, progress: bool = False,
               callback: Callable[[int, list[dict]], None] | None = None) -> list[TrainResult]:
    """Train R same-shape runs as one batched program (see module docstring); results in input order.

    All configs must share :func:`batch_key`, else :class:`BadInput`. ``callback(step, metrics)`` is called
    at every logged step (and the last) with one metrics dict per run. Sets flush-to-zero for denormals
    (weights decaying to zero would otherwise make float32 CPU math crawl). The runs' ``matmul_precision``
    applies to every product of the call, the logged evaluations included (:mod:`forgetlab.grok.precision`).
    Each result's ``extra`` gets the start time and the machine (load average) as training began.
    """
    if not configs:
        return []
    for c in configs:
        if not isinstance(c, TrainConfig):
            raise BadInput("configs", type(c).__name__, "a list of TrainConfig")
        c.validate()
    key = batch_key(configs[0])
    for c in configs[1:]:
        if batch_key(c) != key:
            diff = {k: (getattr(configs[0], k), getattr(c, k)) for k in (*BATCH_FIELDS, "op")
                    if getattr(configs[0], k) != getattr(c, k)}
            raise BadInput("configs", diff, "runs of one batch must share batch_key(config); split them")
    started = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine()}  # for the run's record
    # flush-to-zero keeps float32 fast when weights decay towards zero (denormals); restored afterwards so the
    # caller's process keeps its own floating-point mode
    torch.set_flush_denormal(True)
    try:
        with matmul_precision(configs[0].matmul_precision):
            trainer = train_transformer_batch if key[0] == "transformer" else _train_mlp_batch
            results = trainer(list(configs), keep_history, progress, callback)
    finally:
        torch.set_flush_denormal(False)
    for r in results:
        r.extra.update(started)
    return results


def check_configs(configs: list[TrainConfig]) -> None:
    """Refuse, before any work, what this machine cannot train (a sweep calls it before claiming its folder):
    bf16 matmuls without bf16 units (:class:`BadInput` naming ``matmul_precision``)."""
    for precision in sorted({c.matmul_precision for c in configs}):
        check_matmul_precision(precision)


def train(config: TrainConfig, *, keep_history: bool = True, progress: bool = False) -> TrainResult:
    """Train one run (the same program as :func:`train_many` with R = 1)."""
    return train_many([config], keep_history=keep_history, progress=progress)[0]


def with_overrides(config: TrainConfig, **kw: Any) -> TrainConfig:
    """A copy of ``config`` with some fields replaced, validated."""
    return replace(config, **kw).validate()

"""Training: one batched tensor program for R runs of the same shape (weights ``[R, N, p]``).

Every run has its own seed (init, dropout masks, minibatch order), its own data (alpha, xi, split and label
seeds), weight decay, dropout rate and learning rate. Runs are independent: the loss of a batch is the sum of
the runs' losses, and every random draw of run r comes from run r's own ``torch.Generator`` in a fixed order,
so a run trained inside a batch equals the same run trained alone (up to float summation order).

Internal layout per run: ``E [2p, N]`` = [U^T; V^T] (row i < p is column i of U, row p + j column j of V) and
``Wt [N, p]`` = W^T. The pre-activation of pair (m, n) is ``E[m] + E[p + n]`` (a gather).

Two code paths compute gradients:
- MLP without BatchNorm (the default, full batch or minibatch): a hand-written forward/backward (no autograd):
  gather, fused elementwise work, three batched matmuls and a scatter-add for dE. Tested against autograd.
- MLP with BatchNorm: autograd through the same batched forward (masked batch statistics).
The Transformer is trained one run at a time inside ``train_many`` (no runs axis).

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

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import BadInput, check_choice, check_range
from .data import Dataset, check_p_op, make_dataset, n_pairs
from .fourier import neuron_ipr
from .models import ACTIVATIONS, Transformer, init_mlp_weights
from .phases import classify_phase, is_collapsed

BETAS = (0.9, 0.98)
EPS = 1e-8
BN_EPS = 1e-5
BN_MOMENTUM = 0.1
LOSSES = ("mse", "ce")
MODELS = ("mlp", "transformer")
SUMMARY_KEYS = ("train_acc", "test_acc", "corrupted_acc", "clean_acc", "inversion_acc", "mean_ipr",
                "weight_norm", "phase", "steps", "seconds", "n_corrupted", "n_corrupted_unchanged")


@dataclass(frozen=True)
class TrainConfig:
    """One training run (defaults: issue 2 / the paper's Fig. 1 setting).

    ``seed`` drives initialization, dropout masks and minibatch order. ``split_seed=420`` and
    ``label_seed=0`` are the official code's fixed data seeds, so by default every run sees the paper's data
    regardless of ``seed`` (vary them to resample the data). ``log_every`` is the history granularity
    (steps); the final step is always logged.
    """

    p: int = 97
    op: str = "add"
    alpha: float = 0.5
    xi: float = 0.35
    width: int = 500
    act: str = "quadratic"
    wd: float = 0.0
    dropout: float = 0.0
    batchnorm: bool = False
    batch_size: int = 0
    lr: float = 0.01
    steps: int = 500
    loss: str = "mse"
    model: str = "mlp"
    seed: int = 1
    split_seed: int = 420
    label_seed: int = 0
    log_every: int = 10

    def validate(self) -> TrainConfig:
        """Return self, or raise :class:`BadInput` naming the first bad field."""
        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        check_p_op(self.p, self.op)
        check_range("alpha", self.alpha, 0.0, 1.0, lo_open=True)
        check_range("xi", self.xi, 0.0, 1.0)
        if not is_int(self.width) or self.width < 1:
            raise BadInput("width", self.width, "an integer >= 1")
        check_choice("act", self.act, ACTIVATIONS)
        check_range("wd", self.wd, 0.0, math.inf)
        check_range("dropout", self.dropout, 0.0, 1.0)
        if not isinstance(self.batchnorm, bool):
            raise BadInput("batchnorm", self.batchnorm, "true or false")
        check_range("lr", self.lr, 0.0, math.inf, lo_open=True)
        if not is_int(self.steps) or self.steps < 1:
            raise BadInput("steps", self.steps, "an integer >= 1")
        check_choice("loss", self.loss, LOSSES)
        check_choice("model", self.model, MODELS)
        for name in ("seed", "split_seed", "label_seed"):
            if not is_int(getattr(self, name)):
                raise BadInput(name, getattr(self, name), "an integer")
        if not is_int(self.log_every) or self.log_every < 1:
            raise BadInput("log_every", self.log_every, "an integer >= 1")
        n_train = int(self.alpha * n_pairs(self.p, self.op))
        if not is_int(self.batch_size) or not 0 <= self.batch_size <= n_train:
            raise BadInput("batch_size", self.batch_size, f"an integer in [0, {n_train}] (0 = full batch)")
        if n_train < 1:
            raise BadInput("alpha", self.alpha, "a fraction leaving at least one training pair")
        if self.model == "transformer" and self.batchnorm:
            raise BadInput("batchnorm", True, "false for model 'transformer'")
        if self.model == "transformer" and self.act != "quadratic" and self.act != "relu":
            raise BadInput("act", self.act, "quadratic or relu")
        return self


def paper_minibatch_steps(steps: int, batch_size: int) -> int:
    """Updates the paper runs for ``steps`` normalized steps at ``batch_size`` (official: steps*256//B)."""
    return steps * 256 // batch_size if batch_size > 0 else steps


def batch_key(config: TrainConfig) -> tuple:
    """Fields that must be equal for runs to share one batch: the tensor shapes and the control flow.

    (model, p, number of pairs, width, act, loss, steps, batchnorm, batch_size, log_every). Everything else
    (op with the same pair count, alpha, xi, data seeds, seed, wd, dropout, lr) may differ inside a batch.
    """
    c = config
    return (c.model, c.p, n_pairs(c.p, c.op), c.width, c.act, c.loss, c.steps, c.batchnorm, c.batch_size,
            c.log_every)


@dataclass
class TrainResult:
    """Outcome of one run: summary (the ``summary.json`` keys), history (one dict per logged step), state
    (tensors for ``model.safetensors``: U ``[N, p]``, V ``[N, p]``, W ``[p, N]``, BN tensors if any) and the
    per-neuron IPR at init and at the end (``[N]``). ``summary["seconds"]`` is the wall time of the batch's
    training loop divided by the number of runs in the batch; ``extra`` holds final losses, ``collapsed``
    and ``n_train``."""

    config: TrainConfig
    summary: dict[str, Any]
    history: list[dict[str, Any]]
    state: dict[str, torch.Tensor]
    ipr_init: torch.Tensor
    ipr_final: torch.Tensor
    extra: dict[str, Any] = field(default_factory=dict)


def estimate_batch_bytes(configs: list[TrainConfig]) -> int:
    """Upper estimate of the peak memory (bytes) of ``train_many(configs)`` for one batch of same-shape runs.

    Counts the float32 tensors alive at once: per run about eight ``[n, N]`` activations/gradients (n = the
    largest n_train, or the batch size), the ``[P, N]`` and ``[P, p]`` evaluation tensors, and parameters
    with AdamW moments and gradients.
    """
    if not configs:
        return 0
    c0 = configs[0]
    P = n_pairs(c0.p, c0.op)
    n = c0.batch_size or max(int(c.alpha * n_pairs(c.p, c.op)) for c in configs)
    N, p = c0.width, c0.p
    if c0.model == "transformer":
        d = 128
        per_run = 4 * (12 * P * 4 * d + 3 * P * p + 4 * 14 * d * d)
        return per_run  # trained one run at a time
    factor = 2 if c0.batchnorm else 1
    per_run = 4 * (factor * 8 * n * N + 3 * n * p + 2 * P * N + 3 * P * p + 4 * 3 * p * N + 4 * N)
    return len(configs) * per_run + (1 << 20)


# ----------------------------------------------------------------------------------------------------------
# The batched MLP program


@dataclass
class _Batch:
    """Per-run data stacked on a leading runs axis (P = number of pairs, R = runs)."""

    datasets: list[Dataset]
    M: torch.Tensor  # [R, P] first operands in each run's order
    Nn: torch.Tensor  # [R, P] second operands
    Y: torch.Tensor  # [R, P] training labels (corrupted prefix)
    Ytrue: torch.Tensor  # [R, P]
    n_train: torch.Tensor  # [R] long
    n_corr: torch.Tensor  # [R] long


def _make_batch(configs: list[TrainConfig]) -> _Batch:
    dss = [make_dataset(c.p, c.op, c.alpha, c.xi, split_seed=c.split_seed, label_seed=c.label_seed)
           for c in configs]
    return _Batch(dss, torch.stack([d.m for d in dss]), torch.stack([d.n for d in dss]),
                  torch.stack([d.y for d in dss]), torch.stack([d.y_true for d in dss]),
                  torch.tensor([d.n_train for d in dss]), torch.tensor([d.n_corrupted for d in dss]))


def _flat_index(M: torch.Tensor, Nn: torch.Tensor, p: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row indices into E flattened to ``[R * 2p, N]`` for operands ``[R, B]`` -> two ``[R * B]``."""
    R = M.shape[0]
    base = (torch.arange(R) * 2 * p)[:, None]
    return (M + base).reshape(-1), (Nn + p + base).reshape(-1)


def _gather_preact(E: torch.Tensor, gm: torch.Tensor, gn: torch.Tensor) -> torch.Tensor:
    """Pre-activations ``[R * B, N]``: E[m] + E[p + n] (gather, never a one-hot matmul).

    One ``embedding_bag(mode="sum")`` call reads both rows and writes the sum in a single pass (measured
    faster than two ``index_select`` calls and an add on CPU).
    """
    Ef = E.reshape(-1, E.shape[-1])
    return F.embedding_bag(torch.stack([gm, gn], dim=1), Ef, mode="sum")


def _bn(h: torch.Tensor, bn: dict[str, torch.Tensor], rows: torch.Tensor | None, train: bool) -> torch.Tensor:
    """BatchNorm1d on ``h [R, B, N]``; ``rows [R, B]`` weights valid rows (None = all valid).

    Training mode normalizes by the (masked) batch mean and biased variance and updates the running
    statistics with momentum 0.1 and the unbiased variance, as ``nn.BatchNorm1d``; eval mode uses them.
    """
    if train:
        if rows is None:
            cnt = torch.full((h.shape[0], 1, 1), float(h.shape[1]))
            mean = h.mean(1, keepdim=True)
            var = (h - mean).square().mean(1, keepdim=True)
        else:
            w = rows[:, :, None]
            cnt = w.sum(1, keepdim=True)
            mean = (h * w).sum(1, keepdim=True) / cnt
            var = ((h - mean).square() * w).sum(1, keepdim=True) / cnt
        with torch.no_grad():
            bn["running_mean"].mul_(1 - BN_MOMENTUM).add_(BN_MOMENTUM * mean[:, 0])
            unbiased = var[:, 0] * (cnt[:, 0] / (cnt[:, 0] - 1).clamp_min(1))
            bn["running_var"].mul_(1 - BN_MOMENTUM).add_(BN_MOMENTUM * unbiased)
    else:
        mean, var = bn["running_mean"][:, None], bn["running_var"][:, None]
    return (h - mean) / torch.sqrt(var + BN_EPS) * bn["weight"][:, None] + bn["bias"][:, None]


def batched_forward(E: torch.Tensor, Wt: torch.Tensor, M: torch.Tensor, Nn: torch.Tensor, act: str, *,
                    dmask: torch.Tensor | None = None, bn: dict[str, torch.Tensor] | None = None,
                    rows: torch.Tensor | None = None, train: bool = False) -> torch.Tensor:
    """Autograd-friendly batched MLP: logits ``[R, B, p]`` for operands ``M, Nn [R, B]``.

    E ``[R, 2p, N]``, Wt ``[R, N, p]``; dmask ``[R, B, N]`` (already scaled by 1/(1-q)) or None.
    """
    R, B = M.shape
    p = Wt.shape[-1]
    gm, gn = _flat_index(M, Nn, p)
    a = _gather_preact(E, gm, gn).view(R, B, -1)
    if dmask is not None:
        a = a * dmask
    h = ACTIVATIONS[act](a)
    if bn is not None:
        h = _bn(h, bn, rows, train)
    return torch.bmm(h, Wt)


def loss_targets(Y: torch.Tensor, rows: torch.Tensor, p: int, loss: str) -> torch.Tensor:
    """The constant part of the output gradient, ``[R, B, p]``: one-hot(Y) times the row weights
    (times 2/p for MSE). Precomputed once in full batch."""
    scale = rows * (2.0 / p) if loss == "mse" else rows
    T = torch.zeros(*Y.shape, p)
    T.scatter_(-1, Y[..., None], scale[..., None])
    return T


def loss_grad_weights(out: torch.Tensor, Y: torch.Tensor, rows: torch.Tensor, loss: str,
                      target: torch.Tensor | None = None, inplace: bool = False) -> torch.Tensor:
    """d(sum of per-run mean losses)/d(out), ``[R, B, p]``; rows ``[R, B]`` is 1/n_r on valid rows, else 0.

    MSE is ``nn.MSELoss`` against one-hot targets (mean over n*p elements); CE is mean cross-entropy.
    ``target`` is :func:`loss_targets` (computed here if None); ``inplace`` reuses ``out``'s memory.
    """
    p = out.shape[-1]
    T = loss_targets(Y, rows, p, loss) if target is None else target
    if loss == "mse":
        g = out if inplace else out.clone()
        return g.mul_((rows * (2.0 / p))[..., None]).sub_(T)
    return torch.softmax(out, -1).mul_(rows[..., None]).sub_(T)


def per_example_loss(out: torch.Tensor, Y: torch.Tensor, loss: str) -> torch.Tensor:
    """Loss per example ``[R, B]`` (MSE: mean over the p outputs against the one-hot target)."""
    picked = out.gather(-1, Y[..., None])[..., 0]
    if loss == "mse":
        return (out.square().sum(-1) - 2 * picked + 1) / out.shape[-1]
    return torch.logsumexp(out, -1) - picked


def fast_grads(E: torch.Tensor, Wt: torch.Tensor, gm: torch.Tensor, gn: torch.Tensor, Y: torch.Tensor,
               rows: torch.Tensor, act: str, loss: str, dmask: torch.Tensor | None = None,
               groups: list[tuple[int, int, int]] | None = None, target: torch.Tensor | None = None,
               out: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Hand-written forward + backward of the BN-free MLP: returns (dE ``[R, 2p, N]``, dWt ``[R, N, p]``).

    gm, gn ``[R * B]`` flat row indices (:func:`_flat_index`), Y ``[R, B]`` labels, rows ``[R, B]`` the
    per-row loss weights (1/n_r on valid rows, 0 on padding), dmask ``[R, B, N]`` scaled dropout mask.
    ``groups`` lists ``(r0, r1, n)``: runs r0..r1-1 have n valid rows; dWt is then reduced over exactly n rows
    per group, so a padded run sums in the same order as when trained alone.
    """
    R, B = Y.shape
    Nw = E.shape[-1]
    a = _gather_preact(E, gm, gn).view(R, B, Nw)
    if dmask is not None:
        a.mul_(dmask)
    h = a * a if act == "quadratic" else torch.relu(a)
    logits = torch.bmm(h, Wt)
    g = loss_grad_weights(logits, Y, rows, loss, target, inplace=True)  # [R, B, p]
    dWt = torch.empty_like(Wt) if out is None else out[1]
    if groups is None or len(groups) == 1:
        torch.bmm(h.transpose(1, 2), g, out=dWt)
    else:
        for r0, r1, n in groups:
            torch.bmm(h[r0:r1, :n].transpose(1, 2), g[r0:r1, :n], out=dWt[r0:r1])
    if act == "quadratic":  # d(a^2)/da = 2a: fold the 2 into the matmul
        da = h.baddbmm_(g, Wt.transpose(1, 2), beta=0.0, alpha=2.0).mul_(a)  # h is dead: reuse it
    else:
        da = torch.bmm(g, Wt.transpose(1, 2)).mul_(a > 0)
    if dmask is not None:
        da.mul_(dmask)
    dEf = (torch.empty_like(E) if out is None else out[0]).view(-1, Nw).zero_()
    da2 = da.view(R * B, Nw)
    dEf.index_add_(0, gm, da2)
    dEf.index_add_(0, gn, da2)
    return dEf.view(E.shape), dWt


class StackedAdamW:
    """AdamW (decoupled weight decay, torch's update order) over tensors with a leading runs axis, with a
    per-run learning rate and weight decay (``[R]``).

    Few, large elementwise passes: with ``flat=True`` all parameters live in one contiguous buffer (the
    tensors passed in are replaced by views of it: use :attr:`params`), so one step is about seven
    in-place passes over one buffer however many parameters there are; with equal lr and wd across runs
    they are plain scalars. ``m / (sqrt(v)/sqrt(bc2) + eps)`` is computed as
    ``sqrt(bc2) * m / (sqrt(v) + eps*sqrt(bc2))``.
    """

    def __init__(self, params: list[torch.Tensor], lr: torch.Tensor, wd: torch.Tensor,
                 betas: tuple[float, float] = BETAS, eps: float = EPS, flat: bool = True) -> None:
        self.betas, self.eps, self.t = betas, eps, 0
        R = int(lr.shape[0])
        uniform = bool((lr == lr[0]).all()) and bool((wd == wd[0]).all())
        if flat:
            buf = torch.cat([t.detach().reshape(-1) for t in params])
            if uniform:  # float32 values, so that solo and batched runs round identically
                self._lr, self._decay = [float(lr[0])], [float((1 - lr * wd)[0])]
            else:  # per-element vectors laid out like the buffer
                per = [t[0].numel() for t in params]
                lr_e = torch.cat([lr[:, None].expand(R, n).reshape(-1) for n in per])
                wd_e = torch.cat([wd[:, None].expand(R, n).reshape(-1) for n in per])
                self._lr, self._decay = [lr_e.contiguous()], [(1 - lr_e * wd_e).contiguous()]
            self._bufs = [buf]
            self.params = self.split(buf, [t.shape for t in params])
        else:
            self._bufs = list(params)
            self.params = list(params)
            shapes = [(-1,) + (1,) * (t.dim() - 1) for t in params]
            self._lr = [float(lr[0]) if uniform else lr.view(sh) for sh in shapes]
            self._decay = [float((1 - lr * wd)[0]) if uniform else (1 - lr * wd).view(sh) for sh in shapes]
        self.flat = flat
        self.m = [torch.zeros_like(t) for t in self._bufs]
        self.v = [torch.zeros_like(t) for t in self._bufs]

    @staticmethod
    def split(buf: torch.Tensor, shapes: list) -> list[torch.Tensor]:
        """Contiguous views of a flat buffer, one per shape, in order (param-major layout)."""
        views, off = [], 0
        for sh in shapes:
            n = math.prod(sh)
            views.append(buf[off:off + n].view(sh))
            off += n
        return views

    def new_flat_grad(self) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """A flat gradient buffer and its views shaped like :attr:`params` (fill the views, pass the flat)."""
        g = torch.empty_like(self._bufs[0])
        return g, self.split(g, [t.shape for t in self.params])

    def step(self, grads: list[torch.Tensor]) -> None:
        """One update; ``grads`` match :attr:`params` (with ``flat``, one flat gradient is also accepted)."""
        self.t += 1
        b1, b2 = self.betas
        bc1, bc2s = 1 - b1 ** self.t, math.sqrt(1 - b2 ** self.t)
        if self.flat and not (len(grads) == 1 and grads[0].shape == self._bufs[0].shape):
            grads = [torch.cat([g.reshape(-1) for g in grads])]
        for P, G, m, v, lr, dec in zip(self._bufs, grads, self.m, self.v, self._lr, self._decay, strict=True):
            if not (isinstance(dec, float) and dec == 1.0):
                P.mul_(dec)
            m.lerp_(G, 1 - b1)
            v.mul_(b2).addcmul_(G, G, value=1 - b2)
            denom = v.sqrt().add_(self.eps * bc2s)
            P.addcdiv_(m * lr, denom, value=-bc2s / bc1)  # m * lr even for a scalar lr: same rounding


def _progress(total: int, enabled: bool, label: str):
    """A rich progress bar with ETA, or a no-op when disabled."""
    from ..progress import NullProgress, make_progress

    if not enabled:
        return NullProgress(), None

    prog = make_progress()
    return prog, prog.add_task(label, total=total)


def _metrics(out: torch.Tensor, b: _Batch, loss: str) -> list[dict[str, Any]]:
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


def _uvw(E: torch.Tensor, Wt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Paper-layout views: U, V ``[R, N, p]`` and W ``[R, p, N]``."""
    p = Wt.shape[-1]
    return E[:, :p].transpose(1, 2), E[:, p:].transpose(1, 2), Wt.transpose(1, 2)


def _train_mlp_batch(configs: list[TrainConfig], keep_history: bool, progress: bool,
                     callback: Callable | None) -> list[TrainResult]:
    """Runs are sorted by n_train internally (equal-n runs form contiguous groups; see ``fast_grads``)."""
    sizes = [int(c.alpha * n_pairs(c.p, c.op)) for c in configs]
    order = sorted(range(len(configs)), key=lambda r: sizes[r])
    if order != list(range(len(configs))):
        inner_cb = None
        if callback is not None:
            def inner_cb(step, mets):
                out = [None] * len(mets)
                for i, r in enumerate(order):
                    out[r] = mets[i]
                callback(step, out)
        res = _train_mlp_sorted([configs[r] for r in order], keep_history, progress, inner_cb)
        out: list[TrainResult] = [None] * len(configs)  # type: ignore[list-item]
        for i, r in enumerate(order):
            out[r] = res[i]
        return out
    return _train_mlp_sorted(configs, keep_history, progress, callback)


def _train_mlp_sorted(configs: list[TrainConfig], keep_history: bool, progress: bool,
                      callback: Callable | None) -> list[TrainResult]:
    c0 = configs[0]
    R, p, Nw, steps, bs = len(configs), c0.p, c0.width, c0.steps, c0.batch_size
    b = _make_batch(configs)
    gens = [torch.Generator().manual_seed(c.seed) for c in configs]
    E_list, W_list = [], []
    for g in gens:
        U, V, W = init_mlp_weights(p, Nw, g)
        E_list.append(torch.cat([U.T, V.T]))
        W_list.append(W.T)
    E = torch.stack(E_list).contiguous()
    Wt = torch.stack(W_list).contiguous()
    bn = None
    params = [E, Wt]
    if c0.batchnorm:
        bn = {"weight": torch.ones(R, Nw), "bias": torch.zeros(R, Nw),
              "running_mean": torch.zeros(R, Nw), "running_var": torch.ones(R, Nw)}
        params += [bn["weight"], bn["bias"]]
    lr = torch.tensor([c.lr for c in configs])
    wd = torch.tensor([c.wd for c in configs])
    opt = StackedAdamW(params, lr, wd)
    params = opt.params  # views into the optimizer's flat buffer
    gflat, gviews = opt.new_flat_grad()
    E, Wt = params[0], params[1]
    if bn is not None:
        bn["weight"], bn["bias"] = params[2], params[3]
    q = [c.dropout for c in configs]
    use_dropout = any(x > 0 for x in q)

    # full batch: the first n_max positions of each run's order; rows beyond n_train_r are padding
    n_max = int(b.n_train.max())
    if bs == 0:
        Mtr, Ntr, Ytr = b.M[:, :n_max], b.Nn[:, :n_max], b.Y[:, :n_max]
        valid = (torch.arange(n_max)[None] < b.n_train[:, None]).float()
        rows_fb = valid / b.n_train[:, None].float()
        gm_fb, gn_fb = _flat_index(Mtr, Ntr, p)
        target_fb = loss_targets(Ytr, rows_fb, p, c0.loss)
        ns = b.n_train.tolist()
        groups = [(r0, r0 + ns.count(n), n) for r0, n in enumerate(ns) if r0 == 0 or ns[r0 - 1] != n]
    spe = [(int(n) // bs if bs else 1) for n in b.n_train]
    perms: list[torch.Tensor | None] = [None] * R
    dmask_buf: torch.Tensor | None = None

    def evaluate() -> list[dict[str, Any]]:
        with torch.no_grad():
            out = batched_forward(E, Wt, b.M, b.Nn, c0.act, bn=bn, train=False)
            mets = _metrics(out, b, c0.loss)
            U, V, W = _uvw(E, Wt)
            iprs = neuron_ipr(U, V, W)
            norms = torch.sqrt(E.double().square().sum((1, 2)) + Wt.double().square().sum((1, 2)))
        for r, mt in enumerate(mets):
            mt["mean_ipr"] = float(iprs[r].mean())
            mt["weight_norm"] = float(norms[r])
        return mets, iprs

    histories: list[list[dict]] = [[] for _ in range(R)]
    mets, ipr_init = evaluate()
    if keep_history:
        for r in range(R):
            histories[r].append({"step": 0, **mets[r]})
    t0 = time.perf_counter()
    bar, task = _progress(steps, progress, f"training {R} run(s)")
    with bar:
        for step in range(1, steps + 1):
            if bs == 0:
                M, Nn, Y, rows, gm, gn = Mtr, Ntr, Ytr, rows_fb, gm_fb, gn_fb
            else:
                idx = []
                for r in range(R):
                    k = (step - 1) % spe[r]
                    if k == 0:
                        n_r = int(b.n_train[r])
                        perms[r] = torch.randperm(n_r, generator=gens[r])[: spe[r] * bs].view(spe[r], bs)
                    idx.append(perms[r][k])
                idx_t = torch.stack(idx)
                M, Nn, Y = b.M.gather(1, idx_t), b.Nn.gather(1, idx_t), b.Y.gather(1, idx_t)
                rows = torch.full((R, bs), 1.0 / bs)
                gm, gn = _flat_index(M, Nn, p)
            dmask = None
            if use_dropout:  # one reused buffer; each run draws its own rows from its own generator
                if dmask_buf is None:
                    dmask_buf = torch.ones(R, M.shape[1], Nw)
                dmask = dmask_buf
                for r in range(R):
                    if q[r] > 0:
                        nr = int(b.n_train[r]) if bs == 0 else bs
                        dmask[r, :nr].bernoulli_(1 - q[r], generator=gens[r]).mul_(1.0 / (1 - q[r]))
            if bn is None:
                fast_grads(E, Wt, gm, gn, Y, rows, c0.act, c0.loss, dmask, groups if bs == 0 else None,
                           target_fb if bs == 0 else None, out=(gviews[0], gviews[1]))
                grads = [gflat]
            else:
                for t in params:
                    t.requires_grad_(True)
                with torch.enable_grad():
                    out = batched_forward(E, Wt, M, Nn, c0.act, dmask=dmask, bn=bn,
                                          rows=valid if bs == 0 else None, train=True)
                    g = loss_grad_weights(out.detach(), Y, rows, c0.loss)
                    grads = list(torch.autograd.grad(out, params, g))
                for t in params:
                    t.requires_grad_(False)
            with torch.no_grad():
                opt.step(grads)
            if (keep_history and (step % c0.log_every == 0 or step == steps)) or step == steps:
                mets, ipr_now = evaluate()
                if keep_history:
                    for r in range(R):
                        histories[r].append({"step": step, **mets[r]})
                if callback is not None:
                    callback(step, mets)
            bar.advance(task)
    seconds = (time.perf_counter() - t0) / R
    results = []
    U, V, W = _uvw(E, Wt)
    for r, c in enumerate(configs):
        state = {"U": U[r].contiguous().clone(), "V": V[r].contiguous().clone(),
                 "W": W[r].contiguous().clone()}
        if bn is not None:
            state.update({f"bn_{k}": v[r].clone() for k, v in bn.items()})
        results.append(_result(c, b.datasets[r], mets[r], histories[r], state, ipr_init[r], ipr_now[r],
                               seconds))
    return results


def _result(c: TrainConfig, ds: Dataset, mt: dict, history: list, state: dict, ipr0: torch.Tensor,
            ipr1: torch.Tensor, seconds: float) -> TrainResult:
    collapsed = is_collapsed(mt["weight_norm"], mt["output_spread"])
    summary = {k: mt[k] for k in ("train_acc", "test_acc", "corrupted_acc", "clean_acc", "inversion_acc",
                                  "mean_ipr", "weight_norm")}
    summary.update(phase=classify_phase(mt["train_acc"], mt["test_acc"], c.xi, collapsed), steps=c.steps,
                   seconds=seconds, n_corrupted=ds.n_corrupted,
                   n_corrupted_unchanged=ds.n_corrupted_unchanged)
    extra = {"train_loss": mt["train_loss"], "test_loss": mt["test_loss"], "collapsed": collapsed,
             "n_train": ds.n_train}
    return TrainResult(c, summary, history, state, ipr0.clone(), ipr1.clone(), extra)


def _train_transformer(c: TrainConfig, keep_history: bool, progress: bool,
                       callback: Callable | None) -> TrainResult:
    """Single-run Transformer training with torch's AdamW (same betas, eps, loss and step definition)."""
    b = _make_batch([c])
    ds = b.datasets[0]
    gen = torch.Generator().manual_seed(c.seed)
    model = Transformer(c.p, dropout=c.dropout, generator=gen)
    opt = torch.optim.AdamW(model.parameters(), lr=c.lr, betas=BETAS, eps=EPS, weight_decay=c.wd)
    m_all, n_all, y_all = ds.m, ds.n, ds.y

    def evaluate():
        model.eval()
        with torch.no_grad():
            out = model(m_all, n_all)[None]
            mt = _metrics(out, b, c.loss)[0]
            U, V, W = model.ipr_views()
            iprs = neuron_ipr(U, V, W)
            mt["mean_ipr"] = float(iprs.mean())
            mt["weight_norm"] = float(torch.sqrt(sum(t.double().square().sum() for t in model.parameters())))
        model.train()
        return mt, iprs

    mt, ipr0 = evaluate()
    history = [{"step": 0, **mt}] if keep_history else []
    t0 = time.perf_counter()
    spe = ds.n_train // c.batch_size if c.batch_size else 1
    perm = None
    bar, task = _progress(c.steps, progress, "training transformer")
    with bar:
        for step in range(1, c.steps + 1):
            if c.batch_size:
                k = (step - 1) % spe
                if k == 0:
                    perm = torch.randperm(ds.n_train, generator=gen)[: spe * c.batch_size].view(spe, -1)
                idx = perm[k]
            else:
                idx = torch.arange(ds.n_train)
            out = model(m_all[idx], n_all[idx])
            y = y_all[idx]
            if c.loss == "mse":
                lossv = F.mse_loss(out, F.one_hot(y, c.p).float())
            else:
                lossv = F.cross_entropy(out, y)
            opt.zero_grad(set_to_none=True)
            lossv.backward()
            opt.step()
            if (keep_history and (step % c.log_every == 0)) or step == c.steps:
                mt, ipr1 = evaluate()
                if keep_history:
                    history.append({"step": step, **mt})
                if callback is not None:
                    callback(step, [mt])
            bar.advance(task)
    seconds = time.perf_counter() - t0
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return _result(c, ds, mt, history, state, ipr0, ipr1, seconds)


def train_many(configs: list[TrainConfig], *, keep_history: bool = True, progress: bool = False,
               callback: Callable[[int, list[dict]], None] | None = None) -> list[TrainResult]:
    """Train R same-shape runs as one batched program (see module docstring); results in input order.

    All configs must share :func:`batch_key`, else :class:`BadInput`. ``callback(step, metrics)`` is called
    at every logged step (and the last) with one metrics dict per run. Sets flush-to-zero for denormals
    (weights decaying to zero would otherwise make float32 CPU math crawl).
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
            diff = {k: (getattr(configs[0], k), getattr(c, k)) for k in ("model", "p", "op", "width", "act",
                    "loss", "steps", "batchnorm", "batch_size", "log_every")
                    if getattr(configs[0], k) != getattr(c, k)}
            raise BadInput("configs", diff, "runs of one batch must share batch_key(config); split them")
    # flush-to-zero keeps float32 fast when weights decay towards zero (denormals); restored afterwards so the
    # caller's process keeps its own floating-point mode
    torch.set_flush_denormal(True)
    try:
        if key[0] == "transformer":
            return [_train_transformer(c, keep_history, progress, callback) for c in configs]
        return _train_mlp_batch(list(configs), keep_history, progress, callback)
    finally:
        torch.set_flush_denormal(False)


def train(config: TrainConfig, *, keep_history: bool = True, progress: bool = False) -> TrainResult:
    """Train one run (the same program as :func:`train_many` with R = 1)."""
    return train_many([config], keep_history=keep_history, progress=progress)[0]


def config_dict(config: TrainConfig) -> dict[str, Any]:
    """Plain-dict view of a config (for JSON)."""
    return asdict(config)


def with_overrides(config: TrainConfig, **kw: Any) -> TrainConfig:
    """A copy of ``config`` with some fields replaced, validated."""
    return replace(config, **kw).validate()

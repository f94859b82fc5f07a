"""Corrupted modular-arithmetic datasets (Doshi et al. 2024, Sec. 2; official code `utils/datasets.py`).

All pairs (m, n) of residues mod p are shuffled by a split seed; the first ``int(alpha * P)`` pairs train, the
rest test. The first ``int(xi * n_train)`` training labels are replaced by labels drawn uniformly from all p
classes by a label seed (a draw may equal the true label; we count those). Test labels are never corrupted.

The defaults ``split_seed=420`` and ``label_seed=0`` reproduce the official code exactly: it shuffles with
Python's ``random.seed(420); random.shuffle`` and draws labels with ``torch.manual_seed(0); torch.randint``.
We use private ``random.Random`` / ``torch.Generator`` objects, which give the same streams without touching
global state.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from ..errors import BadInput, check_range
from .config import OPS, check_p_op


def op_add(m: torch.Tensor, n: torch.Tensor, p: int) -> torch.Tensor:
    return (m + n) % p


def op_sub(m: torch.Tensor, n: torch.Tensor, p: int) -> torch.Tensor:
    return (m - n) % p


def op_mul(m: torch.Tensor, n: torch.Tensor, p: int) -> torch.Tensor:
    return (m * n) % p


def op_div(m: torch.Tensor, n: torch.Tensor, p: int) -> torch.Tensor:
    inv = torch.tensor([pow(int(k), p - 2, p) if k else 0 for k in range(p)], dtype=torch.long)
    return (m * inv[n]) % p


@dataclass(frozen=True)
class Dataset:
    """All pairs in shuffled order; the first ``n_train`` train, and the first ``n_corrupted`` of those are
    corrupted. Tensors are ``[P]`` long (P = number of pairs)."""

    p: int
    op: str
    alpha: float
    xi: float
    m: torch.Tensor  # [P] first operand
    n: torch.Tensor  # [P] second operand
    y_true: torch.Tensor  # [P] (m op n) mod p
    y: torch.Tensor  # [P] labels used for training/eval: corrupted on [0, n_corrupted)
    n_train: int
    n_corrupted: int
    n_corrupted_unchanged: int  # corrupted draws that happen to equal the true label

    @property
    def size(self) -> int:
        return int(self.m.shape[0])

    @property
    def n_test(self) -> int:
        return self.size - self.n_train

    def one_hot_inputs(self) -> torch.Tensor:
        """Dense inputs ``[P, 2p]``: concatenated one-hot vectors of m and n (the official formulation)."""
        eye = torch.eye(self.p)
        return torch.cat([eye[self.m], eye[self.n]], dim=1)


def make_dataset(p: int = 97, op: str = "add", alpha: float = 0.5, xi: float = 0.35, *,
                 split_seed: int = 420, label_seed: int = 0) -> Dataset:
    """Build the corrupted dataset deterministically from the two seeds (see module docstring)."""
    check_p_op(p, op)
    check_range("alpha", alpha, 0.0, 1.0, lo_open=True)
    check_range("xi", xi, 0.0, 1.0)
    pairs = [(i, j) for i in range(p) for j in range(p) if not (op == "div" and j == 0)]
    order = list(range(len(pairs)))
    random.Random(split_seed).shuffle(order)
    idx = torch.tensor([pairs[k] for k in order], dtype=torch.long)
    m, n = idx[:, 0].contiguous(), idx[:, 1].contiguous()
    y_true = OPS.get(op)(m, n, p)
    n_train = int(alpha * len(pairs))
    if n_train < 1:
        raise BadInput("alpha", alpha, f"a fraction leaving at least one training pair out of {len(pairs)}")
    n_corrupted = int(xi * n_train)
    gen = torch.Generator().manual_seed(label_seed)
    noise = torch.randint(0, p, (n_corrupted,), generator=gen)
    y = y_true.clone()
    y[:n_corrupted] = noise
    unchanged = int((noise == y_true[:n_corrupted]).sum())
    return Dataset(p=p, op=op, alpha=alpha, xi=xi, m=m, n=n, y_true=y_true, y=y, n_train=n_train,
                   n_corrupted=n_corrupted, n_corrupted_unchanged=unchanged)


@dataclass(frozen=True)
class RunsData:
    """The datasets of R runs stacked on a leading runs axis (P pairs each, in each run's own order)."""

    datasets: list[Dataset]
    M: torch.Tensor  # [R, P] first operands
    Nn: torch.Tensor  # [R, P] second operands
    Y: torch.Tensor  # [R, P] training labels (corrupted prefix)
    Ytrue: torch.Tensor  # [R, P]
    n_train: torch.Tensor  # [R] long
    n_corr: torch.Tensor  # [R] long


def stack_datasets(datasets: list[Dataset]) -> RunsData:
    """Stack same-size datasets on a runs axis (one dataset may appear several times)."""
    return RunsData(list(datasets), torch.stack([d.m for d in datasets]), torch.stack([d.n for d in datasets]),
                    torch.stack([d.y for d in datasets]), torch.stack([d.y_true for d in datasets]),
                    torch.tensor([d.n_train for d in datasets]), torch.tensor([d.n_corrupted for d in datasets]))
